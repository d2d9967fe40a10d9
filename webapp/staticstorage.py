"""The production role's static files: WhiteNoise's compressed, hashed storage, made to live with npm packages."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names for our files and the vendored ones, and the ES modules' own imports rewritten to them.

    npm packages reference files they do not ship (source maps left out of the package, bare module names that the
    import map resolves): such a reference stays as it is instead of failing collectstatic.
    """

    support_js_module_import_aggregation = True

    def hashed_name(self, name, content=None, filename=None):
        try:
            return super().hashed_name(name, content, filename)
        except ValueError:
            return name
