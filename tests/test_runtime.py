"""Threads follow the CPUs this process may use; the user can lower them; nothing is set on import."""

from __future__ import annotations

import os

import pytest
import torch

from deepwell import runtime


def test_available_cpus_respects_the_affinity_mask_and_a_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "CGROUP_V2", tmp_path / "cpu.max")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.available_cpus() == 4
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a container allowed 1.5 CPUs
    assert runtime.available_cpus() == 2


def test_threads_come_from_the_config_else_the_environment_else_the_machine(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    monkeypatch.delenv("DEEPWELL_THREADS", raising=False)
    assert runtime.requested_threads("auto") == 2
    monkeypatch.setenv("DEEPWELL_THREADS", "1")
    assert runtime.requested_threads("auto") == 1 and runtime.requested_threads(3) == 3
    before = torch.get_num_threads()
    try:
        assert runtime.use_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_auto_threads_keep_a_users_lower_choice_and_undo_their_own(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    monkeypatch.delenv("DEEPWELL_THREADS", raising=False)
    monkeypatch.setitem(runtime._threads_set, "count", None)  # as in a fresh process
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the user's choice, made before deepwell
        assert runtime.use_threads("auto") == 1
        torch.set_num_threads(8)  # more than this process may use: lowered
        assert runtime.use_threads("auto") == 2 and torch.get_num_threads() == 2
        assert runtime.use_threads(1) == 1  # a config's training.threads: exactly
        assert runtime.use_threads("auto") == 2  # deepwell's own earlier setting is not a user's choice
    finally:
        torch.set_num_threads(before)


def test_passive_waiting_keeps_a_users_choice(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    runtime.prefer_passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    runtime.prefer_passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_memory_limit_from_the_environment_caps_what_deepwell_plans_for(monkeypatch):
    from deepwell.runtime import available_memory

    machine = available_memory()
    monkeypatch.setenv("DEEPWELL_MEMORY_LIMIT", "300M")
    assert available_memory() == min(machine, 300 * 2**20)
    monkeypatch.setenv("DEEPWELL_MEMORY_LIMIT", "lots")
    with pytest.warns(Warning, match="DEEPWELL_MEMORY_LIMIT='LOTS' is not a number"):
        assert available_memory() == machine
