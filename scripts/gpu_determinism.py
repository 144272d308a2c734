"""The prepared GPU check of seeded reproducibility on CUDA, and what it costs (session 7).

    python scripts/gpu_determinism.py    (on a CUDA machine; see scripts/gpu_check.sh for the set-up)

Seeded cloaks with ``deterministic`` (the default: crops made on the CPU) must be bit-identical
run to run; without it they were not (grid_sample's and the resize's atomic backward passes).
PyTorch's deterministic mode is switched on in warn-only form, so any nondeterministic CUDA
operation left in the loop is listed. Then the 12 MP benchmark photo is timed at mid with and
without, alternating.
"""

from __future__ import annotations

import hashlib
import statistics
import time
import warnings

import torch

torch.use_deterministic_algorithms(True, warn_only=True)

from benchmarks.bench_cloak import synthetic_photo  # noqa: E402
from benchmarks.common import SHARED  # noqa: E402
from fawkes_engine.cloak import CloakOptions  # noqa: E402
from fawkes_engine.photo_io import decode_photo, encode_photo, read_photo  # noqa: E402
from fawkes_engine.pipeline import PhotoCloaker  # noqa: E402


def digest(a) -> str:
    return hashlib.sha1(a.tobytes()).hexdigest()[:12]


def main() -> None:
    seen: set[str] = set()
    for src in ["faces/Keanu_Reeves/2.jpg", "photos/lady.jpg"]:
        photo = read_photo(SHARED / "dev" / src)
        for det in (True, False):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                outs = [
                    PhotoCloaker(CloakOptions(mode="mid", steps=10, seed=7, deterministic=det)).cloak([photo])[0].photo.rgb
                    for _ in range(3)
                ]
            msgs = {str(w.message).split("\n")[0][:160] for w in caught if "deterministic" in str(w.message)}
            diff = max(int(abs(outs[0].astype(int) - o.astype(int)).max()) for o in outs[1:])
            print(f"{src} deterministic={det}: digests {[digest(o) for o in outs]}, max difference {diff} levels")
            for m in sorted(msgs - seen):
                print("   nondeterministic op:", m)
            seen |= msgs
    data = synthetic_photo(12)
    times: dict[bool, list[float]] = {True: [], False: []}
    cloakers = {d: PhotoCloaker(CloakOptions(mode="mid", deterministic=d)) for d in (True, False)}
    for d in (True, False):
        cloakers[d].cloak([decode_photo(data)])  # untimed first cloak
    for _ in range(4):
        for d in (True, False):
            t = time.perf_counter()
            r = cloakers[d].cloak([decode_photo(data)])[0]
            encode_photo(r.photo)
            times[d].append(time.perf_counter() - t)
    for d in (True, False):
        print(f"12 MP mid, deterministic={d}: median {statistics.median(times[d]):.2f} s of {[round(t, 2) for t in times[d]]}")


if __name__ == "__main__":
    main()
