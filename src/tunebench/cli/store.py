"""``tunebench store check DIR`` and ``tunebench store repair DIR``: a damaged study store, and a way out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Check or repair a study's SQLite store.", no_args_is_help=True)

    @group.command("check")
    def check(output_dir: Annotated[Path, typer.Argument(help="a study's output folder (holds tunebench.sqlite)")]
              ) -> None:
        """Say whether the store is intact (read only); exit 2 with the damage named if not."""
        from tunebench.results.repair import check as check_store

        typer.echo(check_store(output_dir))

    @group.command("repair")
    def repair(output_dir: Annotated[Path, typer.Argument(help="a study's output folder (holds tunebench.sqlite)")]
               ) -> None:
        """Copy what can still be read into a new store; keep the damaged file beside it."""
        from tunebench.errors import StoreError
        from tunebench.results.repair import repair as repair_store
        from tunebench.results.repair import store_path
        from tunebench.study.lock import StudyLock, StudyLockedError

        path = store_path(output_dir)
        try:  # the study's own lock: never beside a live study, nor beside another repair
            lock = StudyLock(path.parent).acquire()
        except StudyLockedError as exc:
            raise StoreError(f"the study store '{path}' is in use ({exc.who} holds its folder: a study or another "
                             f"repair); nothing was changed; run 'tunebench store repair {output_dir}' again once it "
                             "has ended") from None
        try:
            typer.echo(repair_store(path).sentence())
        finally:
            lock.release()

    app.add_typer(group, name="store")
