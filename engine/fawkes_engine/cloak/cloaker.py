"""The Fawkes cloak (paper eq. 2), held to an honest budget on the face itself.

For every face we optimize, with Adam, a luminance/chroma field ``u`` on a working-scale
copy of the face (the face box at most ``working_width`` px wide, :mod:`fawkes_engine.working_scale`):

    x ⊕ δ = x + RGB(m_Y·u_Y, m_C·u_C)          (perceptual weights m: fawkes_engine.visibility.masking)
    minimize  Σ_e ‖φ_e(align_e(x ⊕ δ)) − φ_e(x_T)‖ − α ‖φ_e(align_e(x ⊕ δ)) − φ_e(x)‖
              + λ · max(DSSIM*(x, x ⊕ δ) − ρ, 0)

where ``e`` runs over the extractors of the set, features are L2-normalized, ``align_e`` is
the differentiable similarity warp to that extractor's template, and DSSIM* is the worst DSSIM of the face box over its pyramid of
scales (:mod:`fawkes_engine.visibility.scales`). δ is zero outside the face box (the detector's box grown
by ``region_margin``) and fades to zero at its edge. After the loop δ is carried back to the
photo's resolution, rounded, and scaled down if needed until the exact DSSIM* at every scale
from the photo's resolution down to a 112 px face is within ρ and SSIMULACRA2 clears the
mode's floor (:mod:`fawkes_engine.cloak.rounding`).
The α term (push away from the face's own features) and a projection that shrinks δ back
inside the budget after every Adam step were both measured to help: the penalty alone
oscillates around ρ, and without α a face often moves toward the target without ever
becoming nearer to it than to itself.

Faces that end their steps still nearer their own clean features than their target's
centroid, under some extractor, go on in rounds of half the steps (the mode's ``extend``):
the farthest target (eq. 3) is nearly opposite a face, and a few faces need more steps to
cross; faces already across stop. In ``low`` such a face is cloaked again at mid's ρ (the
mode's ``ceiling``). Each face reports the budget it was held to; a custom budget is a hard
limit unless ``max_budget`` says otherwise.

Input diversity (on by default): each step, each extractor sees the face rescaled, shifted
and blurred at random, so the cloak survives resampling and JPEG. Pixels outside face regions
are never changed; all faces of all photos in a call are optimized together as one batch.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch
import torch.nn.functional as F

from fawkes_engine.align import crop_window, similarity_transform, transform_scale, warp_faces, with_origin
from fawkes_engine.cloak.constraints import FaceLimits
from fawkes_engine.cloak.crops import face_crops
from fawkes_engine.cloak.direction import choose_targets, person_anchors, person_groups
from fawkes_engine.cloak.floor import REFINE_BELOW, floor_scale, refine_within
from fawkes_engine.cloak.jobs import FaceJob, FaceResult
from fawkes_engine.cloak.measure import measure_results
from fawkes_engine.cloak.objective import Goal, Objective
from fawkes_engine.cloak.options import CloakOptions
from fawkes_engine.cloak.photo_views import PhotoViews
from fawkes_engine.cloak.precision import loop_module
from fawkes_engine.cloak.rounding import shrink_into_budget, write_faces
from fawkes_engine.cloak.state import FaceState, Phase, judge_from
from fawkes_engine.cloak.window import VisibleWindow, to_unit
from fawkes_engine.device import available, log_mps_fallbacks, pick_device
from fawkes_engine.memory import release_free_memory
from fawkes_engine.models import get_extractor
from fawkes_engine.photo_io import max_value
from fawkes_engine.targets import TargetBank, identity_index, select_target
from fawkes_engine.working_scale import Upsampling, working_copy

log = logging.getLogger(__name__)

# faces whose crops sample at least this many crop pixels per photo pixel get exact DSSIM penalty
# steps at the start of the optimization (see the loop); smaller (downscaled) faces do not
PENALTY_STEPS_ABOVE_SCALE = 0.5


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU (:func:`fawkes_engine.device.pick_device`)."""
    dev = torch.device(pick_device(device, *available()))
    if dev.type == "mps":
        log_mps_fallbacks()
    if dev.type == "cuda":
        # seeded cloaks: cuDNN's autotuned and nondeterministic kernels off (the crops: ``extractor_view``)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dev


class Cloaker:
    """Computes cloaks for batches of faces. Holds the extractors and the target bank."""

    def __init__(self, options: CloakOptions | None = None, bank: TargetBank | None = None) -> None:
        self.options = options or CloakOptions()
        self.options.validate()
        self.device = resolve_device(self.options.runtime.device)
        self.extractors = [get_extractor(n) for n in self.options.targeting.extractors]
        self._bank = bank
        self.modules = [e.torch_module(self.device) for e in self.extractors]
        rt = self.options.runtime
        # what the loop runs: float32 goals and measurements from ``modules``, the loop's passes from these
        self.loop_modules = [loop_module(m, rt.precision, rt.compile, self.device) for m in self.modules]

    @property
    def bank(self) -> TargetBank:
        if self._bank is None:
            self._bank = TargetBank.load()
        return self._bank

    # -- features -------------------------------------------------------------
    @torch.no_grad()
    def features(self, jobs: list[FaceJob]) -> dict[str, np.ndarray]:
        """Clean, normalized embeddings of the faces for every extractor of the set."""
        out: dict[str, np.ndarray] = {}
        for ext, mod in zip(self.extractors, self.modules):
            crops = []
            for job in jobs:
                m = similarity_transform(job.face.landmarks, ext.spec.template)
                x0, y0, x1, y1 = crop_window(job.face.landmarks, job.image.shape, [(ext.spec.template, ext.spec.input_size)], 1.0)
                ctx = to_unit(job.image[y0:y1, x0:x1], max_value(job.image), self.device)
                crops.append(warp_faces(ctx, with_origin(m, x0, y0)[None], ext.spec.input_size))
            emb = mod(torch.cat(crops)) if crops else torch.zeros(0, ext.spec.embedding_dim)
            out[ext.name] = F.normalize(emb, dim=1).cpu().numpy()
        return out

    # -- targets -------------------------------------------------------------------
    def choose_target(self, feats: dict[str, np.ndarray], seed: int) -> int | None:
        t = self.options.targeting
        if t.target_mode == "untargeted":
            return None
        if t.target_mode == "fixed":
            return identity_index(self.bank, t.target_identity or "")
        if t.consistent_target:
            seed = self.options.runtime.seed
        return select_target(self.bank, feats, t.top_k, seed, rank=t.target_mode, stable=t.consistent_target)

    # -- the optimization ------------------------------------------------------------
    def cloak_faces(
        self,
        jobs: list[FaceJob],
        target_groups: list[int] | None = None,
        goals: dict[str, np.ndarray] | None = None,
        goal_label: str = "custom",
    ) -> tuple[list[np.ndarray], list[FaceResult]]:
        """Cloak ``jobs`` together. Returns each face's cloaked region (same dtype as the image) and its result.

        ``target_groups`` assigns faces that belong to the same person (e.g. one user's photos)
        to one target; by default faces with the same ``job.person`` share one, and every other
        face chooses its own (fawkes_engine.cloak.direction). ``goals`` replaces target
        selection with explicit features to approach, one row per job for every extractor
        of the set (Sybil images: a candidate face pulled onto the user's clean features).
        """
        o = self.options
        if not jobs:
            return [], []
        torch.manual_seed(o.runtime.seed)
        rng = np.random.default_rng(o.runtime.seed)
        dev = self.device
        feats = self.features(jobs)
        goal, away = self._direction(jobs, feats, person_groups(jobs, target_groups), goals, goal_label)
        clean = [torch.from_numpy(feats[e.name]).to(dev) for e in self.extractors]
        faces = [self._face_state(job, goal.names[j], goals is None and goal.sign > 0) for j, job in enumerate(jobs)]
        # one parameter group per face: each face runs its own step-size schedule, so a face that is
        # extended restarts its schedule while the others have stopped; fused: one kernel per face
        opt = torch.optim.Adam([{"params": [f.u]} for f in faces], lr=o.optimizer.learning_rate, fused=dev.type in ("cpu", "cuda"))
        # crossing is judged against the target identity's centroid (what a tracker's class looks like)
        centre: list[torch.Tensor] = []
        if any(f.extend_left for f in faces):
            idx = [self.bank.identities.index(t) if t is not None else 0 for t in goal.names]
            centre = [torch.from_numpy(self.bank.centroids(e.name)[idx].astype(np.float32)).to(dev) for e in self.extractors]
        objective = Objective(self.loop_modules, goal, clean, o.targeting, centre, dev, away)
        self._jobs = jobs  # the floor check in the loop reads each face's photo (floor_refine)
        self._optimize(faces, opt, objective, rng)
        deltas = [f.change() for f in faces]  # each face's change on its working copy, before the loop's tensors go
        for f in faces:
            f.window = f.u = f.adv = f.d = f.best_pixels = f.limits = None  # type: ignore[assignment]
        del opt, objective
        release_free_memory()  # the loop's freed heap stays mapped until now (fawkes_engine.memory)
        out_pixels, results = write_faces(jobs, faces, deltas, goal.names, o.budget.floor, dev, o.perception.blemish_levels)
        measure_results(self.features, self.extractors, jobs, out_pixels, results, feats, goal.features, [f.region for f in faces])
        for j, (job, r) in enumerate(zip(jobs, results)):
            r.person = job.person.key if job.person is not None else None
            r.clean_features = {name: v[j] for name, v in feats.items()}
        return out_pixels, results

    def _direction(
        self, jobs: list[FaceJob], feats: dict[str, np.ndarray], groups: list[int], goals: dict[str, np.ndarray] | None, goal_label: str
    ) -> tuple[Goal, list[torch.Tensor] | None]:
        """Where each face goes (its goal) and, with ``leave="person"``, the clean centroid it leaves."""
        o, dev = self.options, self.device
        if goals is not None:
            return Goal.given(goals, self.extractors, len(jobs), goal_label, dev), None
        t, seed = o.targeting, o.runtime.seed
        targets = choose_targets(jobs, feats, groups, self.bank, self.choose_target, seed, t.target_mode != "fixed")
        goal = Goal.targets(targets, feats, self.bank, self.extractors, t, seed, dev)
        if t.leave != "person":
            return goal, None
        anchor = person_anchors(jobs, feats, groups)
        return goal, [torch.from_numpy(anchor[e.name]).to(dev) for e in self.extractors]

    def _optimize(self, faces: list[FaceState], opt: torch.optim.Optimizer, objective: Objective, rng: np.random.Generator) -> None:
        """Eq. 2 by projected Adam steps, each face on its own schedule, until every face is done."""
        o, dev = self.options.optimizer, self.device
        exact_until = max(4, self.options.budget.n_steps // 10)
        # without diversity a step's own forward pass is the clean one and also judges;
        # otherwise faces are judged first, on clean crops, so that a face whose phase ends at a step
        # (and is not extended) costs no diversified forward pass it would not use
        shared = not o.diversity.enabled
        loss_each: torch.Tensor | None = None
        embs: list[torch.Tensor] = []
        for step in itertools.count():
            rows = [j for j, f in enumerate(faces) if not f.done]
            if not rows:
                break
            pos = {j: r for r, j in enumerate(rows)}  # face → its row in this step's tensors
            for f in faces:  # the last step's window-sized tensors go before this step's are made
                f.adv = f.d = None
            for j in rows:
                adv = faces[j].window.pixels(faces[j].u)
                faces[j].adv = adv
                faces[j].d = self._loop_dssim(faces[j], adv)
            if o.project and step > 0:
                self._project(faces, rows, step, exact_until)
            for j in rows:
                if (lim := faces[j].limits) is not None:
                    lim.update(faces[j].adv, step)  # type: ignore[arg-type]
            diverse = o.diversity.this_step(step, rng)
            if shared:
                loss_each, embs = self._step_loss(faces, rows, objective, False, rng)
            judged_rows = [j for j in rows if step >= faces[j].judge_from]
            if judged_rows:
                if shared:
                    assert loss_each is not None
                    at = torch.tensor([pos[j] for j in judged_rows], device=dev)
                    this_step = (loss_each.detach()[at], [e.detach()[at] for e in embs])
                self._judge(faces, judged_rows, step, objective, this_step if shared else None, rng)
            restarted = {j for j in rows if faces[j].phase.over(step) and self._end_of_phase(j, faces[j], step, opt, objective)}
            if all(f.done for f in faces):
                break
            going_rows = [j for j in rows if not faces[j].done and j not in restarted]
            if not going_rows:
                continue
            if shared:
                # finished faces leave the sum: no gradient reaches them, so Adam leaves their pixels be
                assert loss_each is not None
                loss_each = loss_each[torch.tensor([pos[j] for j in going_rows], device=dev)]
            else:
                loss_each, embs = self._step_loss(faces, going_rows, objective, diverse, rng)
            for j in going_rows:
                opt.param_groups[j]["lr"] = faces[j].phase.step_size(step, o.learning_rate)
            opt.zero_grad(set_to_none=True)
            loss_each.sum().backward()
            opt.step()

    # -- the loop's parts ------------------------------------------------------------
    @torch.no_grad()
    def _judge(
        self,
        faces: list[FaceState],
        rows: list[int],
        step: int,
        objective: Objective,
        this_step: tuple[torch.Tensor, list[torch.Tensor]] | None,
        rng: np.random.Generator,
    ) -> None:
        """Keep each judged face's best step so far: ``this_step`` (loss, embeddings) when the step's own pass was clean."""
        judged, judged_embs = this_step if this_step is not None else objective.loss(self._crops(faces, False, rows, rng), rows)
        per_ext = objective.crossing(judged_embs, rows)
        margins = per_ext.min(0).values.tolist()
        for r, j in enumerate(rows):
            f = faces[j]
            # step 0 is the untouched face: never a candidate (a cloak must change something);
            # a face extended to cross keeps the step nearest to crossing
            better = margins[r] > f.margin if f.phase.by_margin else float(judged[r]) < f.best_loss
            if float(f.d) <= f.budget and better and (f.limits is None or f.limits.kept(f.adv)):  # type: ignore[arg-type]
                f.keep(step, float(judged[r]), per_ext[:, r].tolist())

    def _face_state(self, job: FaceJob, target: str | None, may_extend: bool) -> FaceState:
        """The face's working copy, window and zero field (the first step starts from the original face)."""
        o = self.options
        b, look = o.budget, o.perception
        templates = [(e.spec.template, e.spec.input_size) for e in self.extractors]
        region = job.face.region(job.image.shape, look.region_margin)
        context = crop_window(job.face.landmarks, job.image.shape, templates, 1.0 / max(o.optimizer.diversity.smallest_scale, 0.5))
        wc = working_copy(job.image, job.face, region, context, look.working_width, Upsampling(look.upsampling))
        win = VisibleWindow.build(wc, self.device, look)
        u = torch.zeros((1, 3) + tuple(win.original.shape[-2:]), device=self.device, requires_grad=True)
        mats = [similarity_transform(wc.face.landmarks, template) for template, _size in templates]
        # only targeted cloaks toward a bank identity can be extended
        extend = b.max_extend if (may_extend and not o.targeting.stop_fraction and target is not None) else 0
        limits = FaceLimits.build(win.original, b.floor_in_loop, look.blemish_levels, look.blemish_jnd)
        resampled = o.optimizer.tracker_views.resampling and PhotoViews.needed(mats, wc.sx)
        return FaceState(
            region,
            wc,
            win,
            u,
            mats,
            min(transform_scale(m) for m in mats) < PENALTY_STEPS_ABOVE_SCALE,
            b.rho,
            Phase(0, b.n_steps, 1.0, False),
            judge_from(b.n_steps, o.targeting.stop_fraction),
            extend,
            len(self.extractors),
            limits=limits,
            photo_views=PhotoViews(job.image, wc.area, wc.sx, wc.sy) if resampled else None,
        )

    def _loop_dssim(self, f: FaceState, x: torch.Tensor) -> torch.Tensor:
        """Show face-box pixels ``x`` on the face's canvas; their DSSIM, without a graph.

        No graph: the penalty max(DSSIM − ρ, 0) has a gradient only over the budget, and with
        projected steps a face is rarely still over it when the loss is formed; those faces get
        the DSSIM again with its graph (:meth:`_step_loss`).
        """
        f.window.show(x)
        with torch.no_grad():
            return f.window.region_dssim(x)

    def _project(self, faces: list[FaceState], rows: list[int], step: int, exact_until: int) -> None:
        """Pull the previous Adam step back inside the budget (projected gradient steps).

        The shrunk step's DSSIM is then estimated (≈ c²·d) rather than measured, which leaves the
        penalty idle for that face and step, except where exact penalty steps were measured to
        help: the first tenth of a phase for faces the extractors see at about their own
        resolution (docs/decisions.md). Steps that can become the result are always measured.
        """
        shrink = shrink_into_budget([faces[j].u for j in rows], [float(faces[j].d) for j in rows], [faces[j].budget for j in rows])  # type: ignore[arg-type]
        for j, c2 in zip(rows, shrink):
            if c2 is None:
                continue
            f = faces[j]
            assert f.d is not None
            estimate = f.d * c2
            f.adv = f.d = None  # free the unshrunk step
            adv = f.adv = f.window.pixels(f.u)
            if step >= f.judge_from or (step - f.phase.start < exact_until and not f.phase.by_margin and not f.seen_downscaled):
                f.d = self._loop_dssim(f, adv)
            else:
                f.d = estimate
                f.window.show(adv)

    def _crops(self, faces: list[FaceState], diverse: bool, rows: list[int], rng: np.random.Generator) -> list[torch.Tensor]:
        """Each extractor's view of faces ``rows`` (their canvases must show their ``adv``): :func:`face_crops`."""
        cpu_warp = self.options.runtime.deterministic and self.device.type in ("cuda", "mps")
        return face_crops(faces, rows, self.extractors, self.options.optimizer, diverse, cpu_warp, rng)

    def _step_loss(
        self, faces: list[FaceState], rows: list[int], objective: Objective, diverse: bool, rng: np.random.Generator
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loss of faces ``rows`` (eq. 2 with the penalty λ·max(DSSIM* − ρ, 0)) and their embeddings, with a graph."""
        # the DSSIM again with its graph where the penalty is active (the same value, now differentiable)
        d = torch.stack([faces[j].window.region_dssim(faces[j].adv) if float(faces[j].d) > faces[j].budget else faces[j].d for j in rows])  # type: ignore[arg-type,misc]
        feat_loss, embs = objective.loss(self._crops(faces, diverse, rows, rng), rows)
        limit = torch.tensor([faces[j].budget for j in rows], device=self.device)
        zero = feat_loss.new_zeros(())
        held = torch.stack([lim.penalty(faces[j].adv) if (lim := faces[j].limits) is not None else zero for j in rows])  # type: ignore[arg-type]
        return feat_loss + self.options.optimizer.penalty * torch.relu(d - limit) + held, embs

    def _end_of_phase(self, j: int, f: FaceState, step: int, opt: torch.optim.Optimizer, objective: Objective) -> bool:
        """A face at the end of its phase: cloaked again at the ceiling, extended, or done. True if restarted."""
        b = self.options.budget
        if b.floor_refine and b.floor > 0 and not f.floor_checked and f.copy.resampled:
            f.floor_checked = True
            c = floor_scale(self._jobs[j], f, b.floor, self.device)
            if c < REFINE_BELOW:
                more = max(1, b.n_steps // 2)
                refine_within(f, c, step, more, step + judge_from(more, None))
                opt.state.pop(f.u, None)
                return False
        short = f.extend_left > 0 and f.margin < b.cross_margin
        if short and f.budget < b.ceiling and not (f.floor_checked and f.budget < b.rho):  # a refined face keeps its floor
            # a face its budget cannot carry across starts again from the original at the ceiling's
            # budget, as a cloak of that budget would (continuing from the low-budget cloak left the
            # hardest faces short: docs/decisions.md)
            more = min(f.extend_left, b.n_steps)
            f.restart(step, b.ceiling, more, step + 1 + judge_from(more, None))
            opt.state.pop(f.u, None)  # Adam's moments start afresh too
            objective.lean[:, j] = 1.0
            return True
        if short:
            # not across yet: another round of half the steps, the schedule restarted at half height,
            # with more weight on the extractors it is not across under
            for e_i, m in enumerate(f.best_margins):
                objective.lean[e_i, j] = self.options.optimizer.lag_weight if m < b.cross_margin else 1.0
            more = min(f.extend_left, max(1, b.n_steps // 2))
            f.extend_left -= more
            f.phase = Phase(step, more, 0.5, True)
            f.judge_from = step + judge_from(more, None)
            return False
        f.finish(step)
        return False
