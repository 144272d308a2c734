"""The daemon's people as the pipeline uses them: the person directory the compute stage reads, kept in step with the store.

Why a stage-side holder: the compute stage needs the library's people before each batch and
the publish stage adds the faces it published; loading the directory means summing every
stored embedding, so it is loaded once and again only when faces left the store (a photo
removed, a row superseded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fawkes_daemon.people import PeopleStore

if TYPE_CHECKING:
    import numpy as np

    from fawkes_engine.people import PersonDirectory


class Library:
    def __init__(self, store: PeopleStore) -> None:
        self.store = store
        self._people: PersonDirectory | None = None
        self._faces = 0

    def people(self) -> PersonDirectory:
        """The person directory, loaded once and again whenever faces were deleted from the store."""
        stored = self.store.face_count()
        if self._people is None or stored < self._faces:
            self._people = self.store.directory()
        self._faces = stored
        return self._people

    def record(self, file_id: int, people: list[tuple[str, str | None, dict[str, np.ndarray]]]) -> None:
        """The published faces of one file: their person, pinned target and clean embeddings."""
        self.store.record(file_id, people)
        self._faces += len(people)
