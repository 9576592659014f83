"""The simulated repository and the trajectory generator, without any engine.

Why: the endurance measurements are only as exact as the environment that judges each call, so its
tools, its persistence facts and the generator's determinism are pinned here first.
"""

from __future__ import annotations

import json

import pytest

from pytest_asiai.endurance.growth import Calibrator, ContextPlan, handbook, padding_text, system_prompt
from pytest_asiai.endurance.history import TrajectoryHistory, broken_call_text, truncate_arguments
from pytest_asiai.endurance.simrepo import MODULES, Fact, SimRepo, build_repo
from pytest_asiai.endurance.steps import Planner, fact_for, judge_step, reference_call

SEED = 9


@pytest.fixture
def repo() -> SimRepo:
    return SimRepo(SEED)


def test_the_same_seed_builds_the_same_repository():
    assert build_repo(SEED) == build_repo(SEED)
    assert build_repo(SEED)[0] != build_repo(SEED + 1)[0]
    files, constants = build_repo(SEED)
    assert len(constants) == sum(len(names) for names in MODULES.values())
    assert all(c.initial != c.target for c in constants)
    for c in constants:
        assert files[c.path].count(f"\n{c.name} = {c.initial}\n") == 1
        assert f"assert {c.module}.{c.name} == {c.target}" in files[f"tests/test_{c.module}.py"]


def test_tests_fail_until_the_constant_reaches_its_target(repo):
    c = repo.constants[0]
    run = repo.test_run(c.module)
    assert run.results[c.test_id] is False and run.failed == len(MODULES[c.module])
    outcome = repo.execute(
        "edit_file", {"path": c.path, "edits": [{"search": c.line(c.initial), "replace": c.line(c.target)}]}
    )
    assert outcome.ok and outcome.changed == (c.path,)
    assert repo.test_run(c.module).results[c.test_id] is True
    report = repo.execute("run_tests", {"filter": c.module}).text
    assert f"{c.test_id} PASSED" in report
    assert "1 passed" in report.splitlines()[-1]


def test_edit_errors_change_nothing_and_flag_stale_search_text(repo):
    c = repo.constants[0]
    before = repo.digest()
    missing = repo.execute("edit_file", {"path": c.path, "edits": [{"search": "NOPE = 1", "replace": "x"}]})
    assert not missing.ok and "not found" in missing.text and not missing.stale
    assert repo.digest() == before
    edit = {"path": c.path, "edits": [{"search": c.line(c.initial), "replace": c.line(c.target)}]}
    assert repo.execute("edit_file", edit).ok
    again = repo.execute("edit_file", edit)  # the old line was in an earlier version of the file
    assert not again.ok and again.stale
    twice = repo.execute("edit_file", {"path": c.path, "edits": [{"search": c.name, "replace": "X"}]})
    assert not twice.ok and "matches" in twice.text
    atomic = {
        "path": c.path,
        "edits": [{"search": c.line(c.target), "replace": "A = 1"}, {"search": "zz", "replace": ""}],
    }
    assert not repo.execute("edit_file", atomic).ok
    assert repo.value_of(c) == c.target


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("read_file", {"path": "nope.py"}, "no such file"),
        ("read_file", {}, "needs a 'path'"),
        ("edit_file", {"path": "src/config.py", "edits": []}, "non-empty 'edits'"),
        ("edit_file", {"path": "src/config.py", "edits": [{"search": "", "replace": "x"}]}, "non-empty 'search'"),
        ("write_file", {"path": "a.md"}, "needs 'path' and 'content'"),
        ("search_code", {"pattern": ""}, "non-empty 'pattern'"),
        ("delete_file", {"path": "a"}, "unknown tool"),
    ],
)
def test_bad_calls_are_errors_the_agent_is_shown(repo, name, args, message):
    outcome = repo.execute(name, args)
    assert not outcome.ok and outcome.text.startswith("error:") and message in outcome.text


def test_search_read_and_write(repo):
    c = repo.constants[5]
    found = repo.execute("search_code", {"pattern": f"^{c.name} = ", "globs": ["src/*.py"]})
    assert found.ok and found.hits == (c.path,)
    assert f"{c.path}:" in found.text and "1 match(es)" in found.text
    literal = repo.execute("search_code", {"pattern": "[:", "max_results": 2})  # not a regex: substring
    assert literal.ok and len(literal.hits) == 2
    read = repo.execute("read_file", {"path": f"./{c.path}"})
    assert read.ok and read.text.startswith(f"{c.path}:\n") and c.line(c.initial) in read.text
    assert repo.execute("write_file", {"path": "docs/x.md", "content": "hello"}).ok
    assert repo.files["docs/x.md"] == "hello"


def test_lost_facts_and_replaced_facts(repo):
    c = repo.constants[0]
    repo.add_fact(Fact(c.path, c.line(c.initial), 3, c.name))
    assert repo.lost_facts() == []
    repo.execute("write_file", {"path": c.path, "content": "# clobbered\n"})
    assert [f.turn for f in repo.lost_facts()] == [3]
    repo.add_fact(Fact(c.path, "# clobbered", 7, c.name))  # a newer planned fact on the same key
    assert repo.lost_facts() == [] and len(repo.facts) == 1


def test_context_plan_is_linear_from_start_to_end():
    plan = ContextPlan(10_000, 50_000, 80)
    assert plan.target(1) == 10_000 and plan.target(80) == 50_000
    assert plan.target(40) == round(10_000 + 40_000 * 39 / 79)
    assert plan.target(200) == 50_000
    assert ContextPlan(1_000, 5_000, 1).target(1) == 1_000


def test_padding_is_deterministic_and_bounded(repo):
    paths = sorted(repo.files)
    text = padding_text(SEED, 4, 2_000, paths)
    assert text == padding_text(SEED, 4, 2_000, paths)
    assert text != padding_text(SEED, 5, 2_000, paths)
    assert 1_800 <= len(text) <= 2_000
    assert padding_text(SEED, 4, 0, paths) == "" and padding_text(SEED, 4, -5, paths) == ""
    assert not any(f"{c.name} =" in text for c in repo.constants)


def test_calibrator_learns_chars_per_token():
    cal = Calibrator(4.0)
    assert cal.chars_per_token == 4.0 and cal.chars_for(10) == 40
    cal.learn(3_000, 1_000)
    assert cal.chars_per_token == 3.0 and cal.tokens_of(300) == 100
    cal.learn(-1, 5)  # nonsense measurements are ignored
    assert cal.chars_per_token == 3.0


def test_system_prompt_lists_files_and_grows_with_the_handbook(repo):
    small, big = system_prompt(repo, "s1", 0), system_prompt(repo, "s1", 5_000)
    assert small.startswith("Session s1.") and "  src/config.py" in small
    assert len(big) - len(small) >= 5_000
    assert len(set(handbook(3_000).splitlines())) == len(handbook(3_000).splitlines())


def test_planner_sequence_with_probes(repo):
    planner = Planner(repo, SEED, probe_turns=(1, 6, 10))
    steps = [planner.next_step(turn) for turn in range(1, 11)]
    kinds = [s.kind for s in steps]
    # turn 1 is a probe turn, but no edit was asked yet: it takes the next task instead
    assert kinds == ["search", "read", "edit", "test", "search", "probe", "read", "edit", "test", "probe"]
    assert [s.number for s in steps] == list(range(1, 11))
    assert steps[5].constant == steps[2].constant and steps[5].edited_at == 3
    assert steps[9].constant == steps[7].constant and steps[9].edited_at == 8
    assert steps[5].old_line not in steps[5].message  # the probe never shows the current line
    assert "`" in steps[2].message and steps[2].new_line in steps[2].message


def test_the_same_seed_plans_the_same_steps():
    a = [Planner(SimRepo(SEED), SEED, (20,)).next_step(t) for t in range(1, 30)]
    b = [Planner(SimRepo(SEED), SEED, (20,)).next_step(t) for t in range(1, 30)]
    assert a == b


def test_reference_calls_achieve_every_step_for_a_long_run(repo):
    """A perfect agent: 120 turns of reference calls, every step achieved, no fact ever lost."""
    planner = Planner(repo, SEED, probe_turns=(20, 40, 60, 75, 100))
    kinds = set()
    for turn in range(1, 121):
        step = planner.next_step(turn)
        kinds.add(step.kind)
        name, args = reference_call(step, repo)
        assert name == step.tool
        outcome = repo.execute(name, json.loads(json.dumps(args)))
        assert judge_step(step, name, outcome, repo), (turn, step, outcome.text)
        fact = fact_for(step, turn)
        if fact is not None:
            repo.add_fact(fact)
        assert repo.lost_facts() == []
    assert kinds == {"search", "read", "edit", "test", "write", "probe"}
    edited = [c for c in repo.constants if repo.value_of(c) == c.target]
    assert edited and all(repo.test_run(c.module).results[c.test_id] for c in edited)


def test_a_wrong_call_does_not_achieve_the_step(repo):
    planner = Planner(repo, SEED, ())
    search, read, edit = (planner.next_step(t) for t in (1, 2, 3))
    assert not judge_step(read, "read_file", repo.execute("read_file", {"path": "README.md"}), repo)
    wrong_value = {
        "path": edit.path,
        "edits": [{"search": repo.line_of(repo.constant(edit.constant)), "replace": "X = 1"}],
    }
    assert not judge_step(edit, "edit_file", repo.execute("edit_file", wrong_value), repo)
    assert not judge_step(search, "run_tests", repo.execute("run_tests", {}), repo)


def test_conversation_merges_user_messages_and_replays_broken_calls():
    conv = TrajectoryHistory()
    conv.add_system("s")
    conv.add_user("a")
    conv.add_text(broken_call_text("edit_file", '{"path": "x'))
    conv.add_user("error: not JSON")
    conv.add_user("Step 2")
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "user"]
    assert conv.messages[-1]["content"] == "error: not JSON\n\nStep 2"
    assert '"arguments": {"path": "x' in conv.messages[2]["content"]
    conv.add_calls([("c1", "read_file", '{"path": "a"}')])
    conv.add_tool_result("c1", "ok")
    assert conv.messages[-2]["tool_calls"][0]["function"]["name"] == "read_file"
    assert conv.messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}


def test_truncated_arguments_no_longer_parse():
    args = json.dumps({"path": "src/a.py", "edits": [{"search": "A = 1", "replace": "A = 2"}]})
    with pytest.raises(ValueError):
        json.loads(truncate_arguments(args))
    assert args.startswith(truncate_arguments(args))
