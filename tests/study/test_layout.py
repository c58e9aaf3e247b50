from govtune.results.layout import StudyLayout


def test_layout_names_every_study_file(tmp_path):
    layout = StudyLayout(tmp_path)
    run = layout.run("lora-k8-c0-s0")
    assert run.dir == tmp_path / "runs" / "lora-k8-c0-s0"
    assert run.predictions("xnli") == run.dir / "predictions" / "xnli.jsonl"
    assert layout.curated("c2") == tmp_path / "curation" / "c2.jsonl"
    assert layout.dropped("c2").name == "c2.dropped.jsonl"
    assert layout.is_empty()


def test_finished_runs_and_stages_are_read_from_disk(tmp_path):
    layout = StudyLayout(tmp_path)
    for rid, done in (("a", True), ("b", False), ("c", True)):
        run = layout.run(rid)
        run.dir.mkdir(parents=True)
        run.result.write_text("{}")
        if done:
            run.done.write_text("x\n")
    assert [r.dir.name for r in layout.finished_runs()] == ["a", "c"]
    assert layout.run("a").is_done() and not layout.run("b").is_done()
    layout.curation_dir.mkdir()
    for name in ("c2.jsonl", "c2.dropped.jsonl", "c2.report.json", "c0.jsonl"):
        (layout.curation_dir / name).write_text("")
    assert layout.curated_stages() == ["c0", "c2"]
    assert not layout.is_empty()


def test_lm_eval_paths_study_file_and_layout_of(tmp_path):
    layout = StudyLayout(tmp_path)
    run = layout.run("lora-k8-c0-s0")
    assert run.lm_eval_results == run.dir / "lm_eval" / "results.json"
    assert run.lm_eval_tasks == run.dir / "lm_eval" / "tasks"
    assert layout.read_study() == {}
    layout.study.write_text('{"grids": [{"seeds": [0]}]}')
    assert layout.read_study() == {"grids": [{"seeds": [0]}]}
    assert StudyLayout.of(layout) is layout and StudyLayout.of(str(tmp_path)) == layout
