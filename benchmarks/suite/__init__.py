"""The benchmark suite (issue 11): real datasets that install offline, each with a fixed split, deepwell's
defaults beside the best of a few classical baselines trained on the same split in the same run.

The suite has two parts. Defaults are chosen on the `tune` part only; the `holdout` part is reported
separately and is not looked at while choosing, so a default that only fits the tune part shows up there.

    python -m benchmarks.suite.run [--part tune|holdout|all] [--only NAME,…] [--seeds 42]

writes benchmarks/results/suite.{json,md} (or suite-<part>.* for one part).
"""
