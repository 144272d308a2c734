"""How visible a cloak is: every measure the cloak holds itself to, in one place.

- :mod:`~fawkes_engine.visibility.ssim`: DSSIM, the budget ρ (the paper's measure);
- :mod:`~fawkes_engine.visibility.scales`: DSSIM of the face box at every scale a viewer sees it;
- :mod:`~fawkes_engine.visibility.ssimulacra2`: SSIMULACRA2 of many candidates against one original
  (the floor search), and :mod:`~fawkes_engine.visibility.ssimulacra2_torch` the differentiable one
  (the floor held inside the loop);
- :mod:`~fawkes_engine.visibility.blemish`: the largest change in a small window, in levels and in
  just-noticeable differences;
- :mod:`~fawkes_engine.visibility.masking`: where the eye forgives a change (contrast masking), which
  shapes the change rather than measuring it.

The independent check that reports visibility in `fawkes eval` and the benchmarks is
deliberately not here (:mod:`fawkes_engine.evaluate.visibility_check`): a second implementation
(scikit-image, the ``ssimulacra2`` package) measures what this one optimized.

The package imports nothing itself, so importing one measure never loads the others.
"""
