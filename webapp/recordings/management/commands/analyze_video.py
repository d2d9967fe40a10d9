"""python manage.py analyze_video FILE... [--fps N] [--out DIR] [--save] [--empty-frames]: the server's path
(the served models on LiteRT, the tracker, the points filter) over video files, writing each one's two CSVs."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ml import video as mlvideo


class Command(BaseCommand):
    help = "Analyse video files with the served models: <video>.frames.csv and <video>.tracks.csv (docs/video.md)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="video files, or folders of them")
        parser.add_argument(
            "--fps",
            type=float,
            default=mlvideo.DEFAULT_FPS,
            help="frames analysed per second (0: every frame; default %(default)s)",
        )
        parser.add_argument("--out", default=".", help="folder for the CSVs (default: here)")
        parser.add_argument("--save", action="store_true", help="also store each analysis as a recording")
        parser.add_argument("--empty-frames", action="store_true", help="a row for each frame with no face")
        parser.add_argument("--user", help="the recordings' owner with --save (default: the first superuser)")

    def handle(self, *args, files, fps, out, save, empty_frames, user, **options):
        from webapp.faces.store.detection import InferenceUnavailable, served_analyzer
        from webapp.recordings.models import Recording
        from webapp.recordings.services import recording_from_analysis

        paths = [p for f in files for p in (sorted(Path(f).iterdir()) if Path(f).is_dir() else [Path(f)])]
        owner = None
        if save:
            users = get_user_model().objects
            owner = users.filter(username=user).first() if user else users.filter(is_superuser=True).first()
        failed = 0
        for path in paths:
            try:
                with served_analyzer() as (analyzer, versions):
                    progress = _Progress(self.stdout, path.name)
                    analysis = mlvideo.analyze(
                        path,
                        analyzer,
                        fps=fps or None,
                        on_frame=progress,
                        versions=tuple(f"v{v.number}" for v in versions),
                    )
            except InferenceUnavailable as exc:
                raise CommandError(str(exc)) from exc
            except mlvideo.VideoError as exc:
                self.stderr.write(f"{path}: {exc}")
                failed += 1
                continue
            frames_csv, tracks_csv = mlvideo.write_csvs(analysis, out, empty_frames=empty_frames)
            tracks = len({r.track for r in analysis.rows if r.track is not None})
            self.stdout.write(
                f"\r{path.name}: {analysis.frames_analysed} frames, {tracks} track(s)"
                f"{' (no face found)' if not tracks else ''} -> {frames_csv}, {tracks_csv}"
            )
            if save:
                recording = recording_from_analysis(
                    analysis,
                    author=owner,
                    source=Recording.Source.SERVER,
                    checksum=mlvideo.checksum(path),
                    versions=versions,
                )
                self.stdout.write(f"  saved as recording {recording.pk}")
        if failed:
            raise CommandError(f"{failed} of {len(paths)} file(s) could not be analysed (above)")


class _Progress:
    def __init__(self, stream, name: str):
        self.stream, self.name, self.count = stream, name, 0

    def __call__(self, t: float, duration_s: float) -> None:
        self.count += 1
        if self.count % 25 == 0:
            self.stream.write(f"\r{self.name}: {t:.1f} of {duration_s:.1f} s, {self.count} frames", ending="")
            self.stream.flush()
