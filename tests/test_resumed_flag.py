"""run.json's ``resumed`` means an earlier run of the spec left cases, not that the folder exists."""

import repainter
from repainter.store import RunStore


def test_a_folder_set_up_without_cases_resumes_no_run(tmp_path):
    spec = repainter.build_spec({"output_dir": str(tmp_path / "r"), "dataset": {"limit": 1},
                                 "loop": {"rounds": 1, "variants": 1}, "judge": False})
    assert RunStore(spec.run_dir).init(spec) is False  # e.g. repainter sanity, before a run
    first = repainter.run(spec)
    assert first.info.resumed is False
    again = repainter.run(spec)
    assert again.info.resumed is True
