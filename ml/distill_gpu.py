"""Distil a five-class emotion teacher ensemble into the browser's emotion network (PyTorch, one GPU).

Not part of the product (it never imports torch): run where PyTorch and a GPU are, on the npz that
``python -m ml distill pack`` writes. Steps, each bounded by a time budget so the run fits a short GPU lease:

1. teachers: ResNet-18s (3x3 stem, no max-pool, 48x48 input), one per seed, trained on the Training rows with the
   product's augmentation (mirror, +-12 deg, +-8 % scale, +-2 px shift, brightness, contrast) and class weights;
2. students: ``ml.models.EMOTION_ARCH`` written layer for layer (TensorFlow "same" padding, Keras BN epsilon),
   trained on the same augmented batches against the ensemble's mirrored-average probabilities on that very batch
   (knowledge distillation: T^2 KL at temperature T plus class-weighted cross-entropy on the label); a few
   (alpha, T) settings train side by side and the validation rows pick one;
3. out: ``student.npz`` (Keras layout, plus probe faces and their probabilities for ``ml distill import``),
   ``teacher.npz`` (ensemble probabilities on every face) and ``report.json`` (accuracy and macro-F1 of every model on
   the validation rows (PublicTest) and the test rows (PrivateTest), timings).

    python3 ml/distill_gpu.py --data var/distill/fer5.npz --out OUT [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 5  # set from the pack's label_names in main()
STUDENT = {"stem": 24, "stages": (32, 56, 80), "identity_blocks": (1, 1, 0), "dense": 64, "dropout": 0.4}
STUDENT_SETTINGS = [(0.5, 2.0), (0.9, 4.0), (1.0, 1.0)]  # (alpha: share of the distillation loss, temperature)


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


# --- data -------------------------------------------------------------------------------------------------------


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, 48, 48) in [0, 1] -> the product's augmentation (ml.augment.AugmentConfig defaults at 48 px)."""
    b, dev = x.shape[0], x.device

    def uniform(lo, hi, *shape):
        return torch.rand(b, *shape, device=dev, generator=gen) * (hi - lo) + lo

    angle = uniform(-12.0, 12.0) * math.pi / 180
    scale = uniform(0.92, 1.08)
    sign = torch.where(torch.rand(b, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sign, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sign, cos
    theta[:, :, 2] = uniform(-1.0, 1.0, 2) * (2.0 / 24.0)  # +-2 px of a 48-px face in grid units
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = uniform(-0.15, 0.15, 1, 1, 1)
    contrast = uniform(0.75, 1.25, 1, 1, 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + brightness).clamp(0.0, 1.0)


def class_weights(labels: np.ndarray, power: float = 0.5) -> np.ndarray:
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    return (counts.sum() / (NUM_CLASSES * counts)) ** power


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    predicted = probabilities.argmax(1)
    f1 = []
    for c in range(NUM_CLASSES):
        tp = np.sum((predicted == c) & (labels == c))
        precision = tp / max(1, np.sum(predicted == c))
        recall = tp / max(1, np.sum(labels == c))
        f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return {"accuracy": round(float(np.mean(predicted == labels)), 4), "macro_f1": round(float(np.mean(f1)), 4)}


# --- models -----------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return F.relu(self.short(x) + self.b(self.a(x)))


def teacher() -> nn.Module:
    """ResNet-18 (2-2-2-2 basic blocks, 64..512 wide) with a 3x3 stride-1 stem and no max-pool: 48 -> 6 px."""
    layers, cin = [nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, width, stride), BasicBlock(width, width, 1)]
        cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, NUM_CLASSES))


class ConvBN(nn.Module):
    """Conv (no bias) + BN (+ ReLU) with TensorFlow's "same" padding: a stride-2 3x3 pads 0 before and 1 after."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)  # Keras: epsilon 1e-3, momentum 0.99
        self.kernel, self.stride, self.relu = kernel, stride, relu

    def forward(self, x):
        if self.kernel == 3:
            x = F.pad(x, (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1))
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Student(nn.Module):
    """ml.models.build_emotion_model after its 2x2 average pool (FER faces are 48x48 repeated to 96x96)."""

    def __init__(self, stem, stages, identity_blocks, dense, dropout):
        super().__init__()
        self.units = nn.ModuleDict({"stem": ConvBN(1, stem, 3, 1, True)})
        self.plan, cin = [], stem
        for s, (filters, n_identity) in enumerate(zip(stages, identity_blocks, strict=True), start=1):
            name = f"stage{s}_conv"
            self.units[f"{name}_proj"] = ConvBN(cin, filters, 1, 2, False)
            self.units[f"{name}_a"] = ConvBN(cin, filters, 3, 2, True)
            self.units[f"{name}_b"] = ConvBN(filters, filters, 3, 1, False)
            self.plan.append((name, True))
            for i in range(n_identity):
                name = f"stage{s}_id{i + 1}"
                self.units[f"{name}_a"] = ConvBN(filters, filters, 3, 1, True)
                self.units[f"{name}_b"] = ConvBN(filters, filters, 3, 1, False)
                self.plan.append((name, False))
            cin = filters
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Linear(cin, dense)
        self.out = nn.Linear(dense, NUM_CLASSES)

    def forward(self, x):
        u = self.units
        x = u["stem"](x)
        for name, projects in self.plan:
            shortcut = u[f"{name}_proj"](x) if projects else x
            x = F.relu(shortcut + u[f"{name}_b"](u[f"{name}_a"](x)))
        x = F.relu(self.dense(self.drop(x.mean((2, 3)))))
        return self.out(x)

    def keras_weights(self) -> dict[str, np.ndarray]:
        """``layer/index`` -> array, in the order tf_keras's set_weights() takes them."""
        out = {}
        for name, unit in self.units.items():
            out[f"{name}_conv/0"] = unit.conv.weight.detach().permute(2, 3, 1, 0).cpu().numpy()
            bn = unit.bn
            for i, t in enumerate((bn.weight, bn.bias, bn.running_mean, bn.running_var)):
                out[f"{name}_bn/{i}"] = t.detach().cpu().numpy()
        for keras_name, linear in (("head_dense", self.dense), ("probabilities", self.out)):
            out[f"{keras_name}/0"] = linear.weight.detach().t().cpu().numpy()
            out[f"{keras_name}/1"] = linear.bias.detach().cpu().numpy()
        return {k: v.astype(np.float32) for k, v in out.items()}


@torch.no_grad()
def predict(models: list[nn.Module], x: torch.Tensor, mirror: bool, batch: int = 1024) -> torch.Tensor:
    """Mean probabilities of the models (and of the mirrored faces, if asked) on uint8 (N, 48, 48) faces."""
    for m in models:
        m.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch, None].float() / 255.0
        views = [xb, xb.flip(-1)] if mirror else [xb]
        with torch.autocast(x.device.type, torch.bfloat16):
            probs = [F.softmax(m(v).float(), 1) for m in models for v in views]
        out.append(torch.stack(probs).mean(0))
    return torch.cat(out)


# --- training ---------------------------------------------------------------------------------------------------


def cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def batches(n: int, size: int, gen: torch.Generator, device) -> list[torch.Tensor]:
    order = torch.randperm(n, device=device, generator=gen)
    return [order[i : i + size] for i in range(0, n - size + 1, size)]  # drop the ragged last batch


def train_teacher(x, y, weights, seed, epochs, batch, device) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator(device).manual_seed(seed)
    net = teacher().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s, steps, len(x) // batch))
    for _ in range(epochs):
        net.train()
        for idx in batches(len(x), batch, gen, device):
            xb = augment(x[idx, None].float() / 255.0, gen).contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, torch.bfloat16):
                loss = F.cross_entropy(net(xb).float(), y[idx], weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net


def train_students(x, y, weights, teach, settings, epochs, batch, seed, device, budget_s) -> list[Student]:
    """Students side by side on the same augmented batches; ``teach(idx, xb)`` gives the teachers' logits (online: the
    teachers label each batch as the students see it; offline: stored probabilities of the plain faces)."""
    torch.manual_seed(seed)
    gen = torch.Generator(device).manual_seed(seed)
    students = [Student(**STUDENT).to(device) for _ in settings]
    opts = [torch.optim.AdamW(s.parameters(), lr=3e-3, weight_decay=1e-2) for s in students]
    per_epoch = len(x) // batch
    started, total = time.monotonic(), epochs * per_epoch
    step, epoch = 0, 0
    while epoch < epochs:
        for s in students:
            s.train()
        for idx in batches(len(x), batch, gen, device):
            xb = augment(x[idx, None].float() / 255.0, gen)
            teacher_logits = teach(idx, xb)
            w = weights[y[idx]]
            factor = cosine(step, total, per_epoch)
            for student, opt, (alpha, temp) in zip(students, opts, settings, strict=True):
                logits = student(xb)
                hard = (F.cross_entropy(logits, y[idx], reduction="none") * w).mean()
                soft_t = F.softmax(teacher_logits / temp, 1)
                kd = (F.kl_div(F.log_softmax(logits / temp, 1), soft_t, reduction="none").sum(1) * w).mean()
                loss = alpha * temp * temp * kd + (1 - alpha) * hard
                for group in opt.param_groups:
                    group["lr"] = 3e-3 * factor
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            step += 1
        epoch += 1
        if epoch == 1:  # the first epoch's time decides how many fit the budget; the schedule follows
            per = time.monotonic() - started
            epochs = max(2, min(epochs, int(budget_s / per)))
            total = epochs * per_epoch
            log(f"students: {per:.2f} s per epoch -> {epochs} epochs")
    return students


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--teachers", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=40)
    parser.add_argument("--teacher-budget", type=float, default=230.0, help="seconds for all teachers")
    parser.add_argument("--student-epochs", type=int, default=200)
    parser.add_argument("--student-budget", type=float, default=190.0, help="seconds for the students")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--teacher-probs", help="teacher.npz of an earlier run: train the students only (offline)")
    parser.add_argument("--settings", nargs="*", help="student settings alpha:temperature (alpha 0: no distillation)")
    parser.add_argument("--device", default="cuda", help="cpu: for a smoke run where there is no GPU")
    parser.add_argument("--smoke", action="store_true", help="a few hundred faces, one epoch each: checks the path")
    args = parser.parse_args()
    device = args.device
    torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = np.load(args.data)
    global NUM_CLASSES
    names = [str(n) for n in data["label_names"]] if "label_names" in data.files else None
    NUM_CLASSES = len(names) if names else int(data["labels"].max()) + 1
    images = torch.from_numpy(data["images"]).to(device)
    labels = torch.from_numpy(data["labels"]).to(device)
    masks = {k: torch.from_numpy(data[k]).to(device) for k in ("train", "val", "test")}
    if args.smoke:
        masks = {k: m & (torch.cumsum(m.long(), 0) <= 300) for k, m in masks.items()}
        args.teachers, args.teacher_epochs, args.student_epochs = 1, 1, 1
    x, y = images[masks["train"]], labels[masks["train"]]
    weights = torch.tensor(class_weights(y.cpu().numpy()), dtype=torch.float32, device=device)
    # validation (PublicTest) and test (PrivateTest) rows, where the file has them
    held = {k: m for k, m in masks.items() if k != "train" and bool(m.any())}
    truth = {k: labels[m].cpu().numpy() for k, m in held.items()}
    report = {
        "n": {k: int(m.sum()) for k, m in masks.items()},
        "teachers": [],
        "gpu": torch.cuda.get_device_name() if device == "cuda" else device,
    }
    log("faces", report["n"])

    teachers, started = [], time.monotonic()
    for i in range(0 if args.teacher_probs else args.teachers):
        t0 = time.monotonic()
        net = train_teacher(x, y, weights, 100 + i, args.teacher_epochs, args.batch, device)
        teachers.append(net)
        seconds = time.monotonic() - t0
        figures = {k: scores(predict([net], images[m], True).cpu().numpy(), truth[k]) for k, m in held.items()}
        report["teachers"].append({"seed": 100 + i, "seconds": round(seconds, 1), **figures})
        log(f"teacher {i}: {seconds:.0f} s", figures)
        if time.monotonic() - started + seconds > args.teacher_budget:
            break
    if args.teacher_probs:  # offline: the probabilities an earlier run stored
        every = torch.from_numpy(np.load(args.teacher_probs)["probabilities"].astype(np.float32)).to(device)
        report["teacher_probs"] = args.teacher_probs
    else:
        every = predict(teachers, images, True)
    report["ensemble"] = {k: scores(every[m].cpu().numpy(), truth[k]) for k, m in held.items()}
    log("ensemble", report["ensemble"])
    np.savez_compressed(out / "teacher.npz", probabilities=every.cpu().numpy().astype(np.float16))

    stored = torch.log(every[masks["train"]] + 1e-8)

    @torch.no_grad()
    def teach(idx, xb):
        if not teachers:
            return stored[idx]
        for t in teachers:
            t.eval()
        with torch.autocast(xb.device.type, torch.bfloat16):
            xt = xb.contiguous(memory_format=torch.channels_last)
            return torch.stack([t(v).float() for t in teachers for v in (xt, xt.flip(-1))]).mean(0)

    settings = STUDENT_SETTINGS if not args.settings else [tuple(map(float, a.split(":"))) for a in args.settings]
    t0 = time.monotonic()
    students = train_students(
        x, y, weights, teach, settings, args.student_epochs, args.batch, 7, device, args.student_budget
    )
    report["student_seconds"] = round(time.monotonic() - t0, 1)
    report["students"] = []
    for student, (alpha, temp) in zip(students, settings, strict=True):
        figures = {}
        for k, m in held.items():
            student.eval()
            with torch.no_grad():
                probs = torch.cat([F.softmax(student(c[:, None].float() / 255.0), 1) for c in images[m].split(1024)])
            figures[k] = scores(probs.cpu().numpy(), truth[k])
        report["students"].append({"alpha": alpha, "temperature": temp, **figures})
        log(f"student alpha={alpha} T={temp}", figures)
    best = max(range(len(students)), key=lambda i: report["students"][i]["val"]["accuracy"])
    report["chosen"] = best
    student = students[best].eval()
    probe = images[masks["val"]][:32]
    torch.backends.cudnn.allow_tf32 = False  # the probe is for comparing with Keras in float32
    with torch.no_grad():
        probe_probs = F.softmax(student(probe[:, None].float() / 255.0), 1).cpu().numpy()
    np.savez(
        out / "student.npz",
        **({"label_names": np.array(names)} if names else {}),
        probe_images=probe.cpu().numpy(),
        probe_probabilities=probe_probs,
        **student.keras_weights(),
    )
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log("done", json.dumps(report))


if __name__ == "__main__":
    main()
