"""The workflow, integration and policy stores on both backends: workflows with their
findings (most severe first) and checkpoints, per-organization integrations, policy
rules (an organization's and the global ones) and their violations; and a workflow
resumed after its process is SIGKILLed, each step applied once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from aragora_db import Database, FindingSeverity, WorkflowStatus, connect
from aragora_repos import Config, ForeignKeyViolation, UniqueViolation
from tests.generated.test_repositories import make_org, make_user

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_workflows_findings_and_checkpoints(db: Database) -> None:
    await make_user(db, "u1")
    await make_org(db, "acme", "u1")
    wf = await db.workflows.create_workflow(
        id="w1", org_id="acme", name="audit", definition={"steps": 3}, created_by="u1"
    )
    assert wf is not None and (wf.status, wf.finished_at) == ("pending", None)
    running = await db.workflows.set_workflow_status(status=WorkflowStatus.RUNNING, id="w1")
    assert running is not None and running.finished_at is None
    assert [w.id for w in await db.workflows.list_unfinished_workflows()] == ["w1"]
    for severity, title in (("low", "a"), ("critical", "b"), ("medium", "c"), ("critical", "d")):
        await db.workflows.add_workflow_finding(
            workflow_id="w1",
            severity=FindingSeverity(severity),
            title=title,
            detail="",
            evidence={"t": title},
        )
    findings = await db.workflows.list_workflow_findings(workflow_id="w1")
    assert [f.title for f in findings] == ["b", "d", "c", "a"]
    counts = await db.workflows.count_workflow_findings_by_severity(workflow_id="w1")
    # In the enum's order, as PostgreSQL sorts an enum.
    assert [(c.severity, c.findings) for c in counts] == [
        ("low", 1),
        ("medium", 1),
        ("critical", 2),
    ]
    try:
        await db.workflows.add_workflow_finding(
            workflow_id="nowhere", severity=FindingSeverity.LOW, title="x", detail="", evidence={}
        )
    except ForeignKeyViolation:
        pass
    else:
        raise AssertionError("a finding of no workflow was stored")
    for step in (0, 1, 2):
        await db.workflows.save_workflow_checkpoint(workflow_id="w1", step=step, state={"s": step})
    await db.workflows.save_workflow_checkpoint(workflow_id="w1", step=2, state={"s": "retried"})
    latest = await db.workflows.latest_workflow_checkpoint(workflow_id="w1")
    assert latest is not None and (latest.step, latest.state) == (2, {"s": "retried"})
    assert len(await db.workflows.list_workflow_checkpoints(workflow_id="w1")) == 3
    done = await db.workflows.set_workflow_status(status=WorkflowStatus.COMPLETED, id="w1")
    assert done is not None and done.finished_at is not None
    assert await db.workflows.list_unfinished_workflows() == []
    assert [w.id for w in await db.workflows.list_workflows_for_org(org_id="acme", lim=5)] == ["w1"]


async def test_integrations_are_one_per_org_and_provider(db: Database) -> None:
    await make_user(db, "u1")
    await make_org(db, "acme", "u1")
    first = await db.integrations.upsert_integration(
        id="i1", org_id="acme", provider="slack", config={"channel": "#a"}, enabled=True
    )
    again = await db.integrations.upsert_integration(
        id="i2", org_id="acme", provider="slack", config={"channel": "#b"}, enabled=False
    )
    assert first is not None and again is not None and again.id == "i1"
    assert (again.config, again.enabled) == ({"channel": "#b"}, False)
    await db.integrations.upsert_integration(
        id="i3", org_id="acme", provider="github", config={}, enabled=True
    )
    listed = await db.integrations.list_integrations_for_org(org_id="acme")
    assert [i.provider for i in listed] == ["github", "slack"]
    assert (
        await db.integrations.set_integration_enabled(org_id="acme", provider="slack", enabled=True)
        == 1
    )
    got = await db.integrations.get_integration(org_id="acme", provider="slack")
    assert got is not None and got.enabled
    assert await db.integrations.delete_integration(org_id="acme", provider="slack") == 1
    assert await db.integrations.get_integration(org_id="acme", provider="slack") is None


async def test_policy_rules_and_violations(db: Database) -> None:
    await make_user(db, "u1")
    for org in ("acme", "beta"):
        await make_org(db, org, "u1")
    specs: list[tuple[str, str | None, str]] = [
        ("r1", "acme", "no pii"),
        ("r2", None, "global"),
        ("r3", "beta", "b"),
    ]
    for rid, owner, name in specs:
        await db.policies.create_policy_rule(
            id=rid,
            org_id=owner,
            name=name,
            rule={"match": name},
            severity=FindingSeverity.HIGH,
            enabled=True,
        )
    try:
        await db.policies.create_policy_rule(
            id="r1", org_id=None, name="dup", rule={}, severity=FindingSeverity.LOW, enabled=True
        )
    except UniqueViolation:
        pass
    else:
        raise AssertionError("a duplicate rule id was stored")
    rules = await db.policies.list_enabled_policy_rules(org_id="acme")
    assert [r.id for r in rules] == ["r2", "r1"]  # by name: "global" < "no pii"
    assert await db.policies.set_policy_rule_enabled(id="r2", enabled=False) == 1
    assert [r.id for r in await db.policies.list_enabled_policy_rules(org_id="acme")] == ["r1"]
    one = await db.policies.record_policy_violation(
        rule_id="r1", debate_id=None, subject="message 7", detail={"field": "email"}
    )
    await db.policies.record_policy_violation(
        rule_id="r3", debate_id=None, subject="other org", detail={}
    )
    assert one is not None
    open_ = await db.policies.list_open_policy_violations(org_id="acme", lim=10)
    assert [(v.id, v.rule_name, v.severity) for v in open_] == [(one.id, "no pii", "high")]
    assert await db.policies.resolve_policy_violation(id=one.id) == 1
    assert await db.policies.resolve_policy_violation(id=one.id) == 0
    assert await db.policies.list_open_policy_violations(org_id="acme", lim=10) == []


_STEPS = 40
_RUNNER = """
import asyncio, sys
from pathlib import Path
from aragora_db import FindingSeverity, WorkflowStatus, connect
from aragora_repos import Config

async def main(data: str) -> None:
    db = await connect(Config(data_dir=Path(data)))
    latest = await db.workflows.latest_workflow_checkpoint(workflow_id="w")
    start = 0 if latest is None else latest.step + 1
    for step in range(start, STEPS):
        async with db.transaction():  # the step's effect and its checkpoint, together
            await db.workflows.add_workflow_finding(
                workflow_id="w", severity=FindingSeverity.INFO, title=f"step {step}",
                detail="", evidence={},
            )
            await db.workflows.save_workflow_checkpoint(
                workflow_id="w", step=step, state={"done": step}
            )
        print(step, flush=True)
    await db.workflows.set_workflow_status(status=WorkflowStatus.COMPLETED, id="w")
    await db.close()

asyncio.run(main(sys.argv[1]))
""".replace("STEPS", str(_STEPS))


def test_a_workflow_resumes_after_a_crash_applying_each_step_once(tmp_path: Path) -> None:
    async def setup() -> None:
        db = await connect(Config(data_dir=tmp_path))
        await db.migrate()
        await db.workflows.create_workflow(
            id="w", org_id=None, name="w", definition={}, created_by=None
        )
        await db.workflows.set_workflow_status(status=WorkflowStatus.RUNNING, id="w")
        await db.close()

    asyncio.run(setup())
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}"}
    child = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    for _ in range(12):  # twelve steps reported done, then killed mid-way through more
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    resumed = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout.split()[0]) >= 12  # it went on, not from the start

    async def check() -> None:
        db = await connect(Config(data_dir=tmp_path))
        findings = await db.workflows.list_workflow_findings(workflow_id="w")
        wf = await db.workflows.get_workflow(id="w")
        await db.close()
        assert sorted(f.title for f in findings) == sorted(f"step {n}" for n in range(_STEPS))
        assert wf is not None and wf.status == "completed"

    asyncio.run(check())
