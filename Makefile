# The two commands of the README: `make run` and `make test`. Each installs what it needs on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PG_URL ?= postgres://postgres@127.0.0.1:5432/emotion_ai
# Label Studio for the interoperability tests, in a virtual environment of its own (its pins are not ours)
LS_VENV := .venv-label-studio
LABEL_STUDIO_VERSION := 1.23.2

.PHONY: run test setup deps lint checks pytest pytest-postgres fuzz interop worker web clean lock label-studio-lock \
	compose-check

# requirements.txt names what the project uses; requirements/project.lock pins everything that pulls (a new venv
# installs exactly what CI tested, not whatever the index holds that day).
$(BIN)/.installed: requirements.txt requirements/project.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c requirements/project.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser's face detector: BlazeFace from the npm package, rebuilt as a TF.js model (python -m ml detector).
build/detector/model.json: $(BIN)/.installed node_modules/.installed ml/detect.py
	$(BIN)/python -m ml detector --out build/detector

/usr/bin/chromium:
	apt-get update -qq && apt-get install -y -qq chromium

# the buffering proxy in front of gunicorn (manage.py proxy_config); the production tests run it
/usr/sbin/nginx:
	apt-get update -qq && apt-get install -y -qq nginx-light

deps: $(BIN)/.installed node_modules/.installed build/detector/model.json

setup: deps
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap

# One command: set up, then the web server and one Celery worker (Ctrl+C stops both).
# The worker logs to var/worker.log and TensorFlow's C++ start-up chatter is off, so the URL line stays in sight.
run: setup
	@export TF_CPP_MIN_LOG_LEVEL=2; \
	  $(BIN)/celery -A webapp worker -Q training,celery --concurrency 1 --loglevel INFO --logfile var/worker.log \
	    >>var/worker.log 2>&1 & \
	  worker=$$!; trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	  echo; echo "  Emotion AI Studio: http://$(HOST):$(PORT)/   (admin login: see var/admin-password.txt;" \
	    "worker log: var/worker.log)"; echo; \
	  $(BIN)/python manage.py runserver $(HOST):$(PORT)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

checks: deps
	$(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') ALLOWED_HOSTS=studio.example \
	  CACHE_URL=redis://127.0.0.1:6379/1 DJANGO_SETTINGS_MODULE=webapp.settings.production $(BIN)/python manage.py check --deploy --fail-level WARNING
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

pytest: deps /usr/bin/chromium /usr/sbin/nginx
	$(BIN)/pytest --ignore=tests/interop

# The API tests once more against PostgreSQL (pytest-django creates and drops test_emotion_ai).
pytest-postgres: deps
	DATABASE_URL=$(PG_URL) $(BIN)/pytest tests/faces tests/registry -q

# Schemathesis against a live instance with a staff token: every operation, 200 generated cases each, a fixed seed.
fuzz: deps
	$(BIN)/python tests/fuzz_api.py --examples 200

# Label Studio's whole resolved set, pinned (requirements/label-studio.lock): unpinned, a new venv took sentry-sdk 3
# and label-studio then died at start. A changed lock rebuilds the venv.
$(LS_VENV)/.installed: requirements/label-studio.lock
	rm -rf $(LS_VENV)
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet -r requirements/label-studio.lock
	touch $@

# Regenerate the locks (after a change to requirements.txt or LABEL_STUDIO_VERSION); commit what they write.
lock:
	rm -rf var/lock-venv && $(PYTHON) -m venv var/lock-venv && var/lock-venv/bin/pip install --quiet -r requirements.txt
	{ sed -n 1,2p requirements/project.lock; var/lock-venv/bin/pip freeze; } > requirements/project.lock.new
	mv requirements/project.lock.new requirements/project.lock && rm -rf var/lock-venv

label-studio-lock:
	rm -rf var/lock-venv && $(PYTHON) -m venv var/lock-venv
	var/lock-venv/bin/pip install --quiet label-studio==$(LABEL_STUDIO_VERSION) 'sentry-sdk<3'
	{ sed -n 1,2p requirements/label-studio.lock; var/lock-venv/bin/pip freeze; } > requirements/label-studio.lock.new
	mv requirements/label-studio.lock.new requirements/label-studio.lock && rm -rf var/lock-venv

# The real Label Studio on loopback: our config, our ML backend on whole photos, the round trip both ways.
interop: deps $(LS_VENV)/.installed
	LABEL_STUDIO_BIN=$(CURDIR)/$(LS_VENV)/bin/label-studio $(BIN)/pytest tests/interop

test: lint checks pytest pytest-postgres fuzz interop

# Docker's engine, compose and debootstrap from Debian (compose-check); dockerd is started by .ci/run or by hand.
/usr/bin/docker-compose:
	apt-get update -qq && apt-get install -y -qq docker.io docker-compose debootstrap

# The compose stack built from source and run here (host networking, loopback ports 18080/18000/16379/15432), a smoke
# test through its proxy (docker/compose_check.py), then removed. Needs a running dockerd.
compose-check: deps /usr/bin/chromium /usr/bin/docker-compose
	$(BIN)/python docker/compose_check.py

clean:
	rm -rf $(VENV) $(LS_VENV) node_modules var build
