import json

from minimind_tui import demo


def test_demo_corpus_is_deterministic(tmp_path):
    a = demo.ensure_demo_data(tmp_path / "a")
    b = demo.ensure_demo_data(tmp_path / "b")
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()


def test_held_out_sums_never_appear_in_sft_but_do_in_pretraining(tmp_path):
    pre, sft = demo.ensure_demo_data(tmp_path)
    sft_text = sft.read_text(encoding="utf-8")
    pre_text = pre.read_text(encoding="utf-8")
    for a, b in demo.HELD_OUT_SUMS:
        assert f"What is {a} plus {b}?" not in sft_text and f"{a} 加 {b} 等于多少" not in sft_text
    assert any(f"{a} plus {b} equals {a + b}" in pre_text for a, b in demo.HELD_OUT_SUMS)
    assert len(demo.held_out_questions()) == 2 * len(demo.HELD_OUT_SUMS)


def test_demo_files_are_valid_training_data(tmp_path):
    from dataset.jsonl import JsonlFile
    from dataset.validate import scan

    pre, sft = demo.ensure_demo_data(tmp_path)
    assert scan(JsonlFile(pre), "pretrain")[1] == []
    assert scan(JsonlFile(sft), "sft")[1] == []
    first = json.loads(sft.read_text(encoding="utf-8").splitlines()[0])
    assert first["conversations"][0]["role"] == "user"


def test_demo_eval_only_without_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from minimind_tui.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--eval-only"]) == 2
    assert "no demo SFT weights yet" in capsys.readouterr().err


def test_writers_racing_on_the_demo_files_all_succeed(tmp_path):
    # The dashboard scans from two threads at start-up and both may write the demo corpus.
    import threading

    from minimind_tui.demo import ensure_demo_data, write_jsonl

    errors = []

    def write():
        try:
            for _ in range(20):
                write_jsonl(tmp_path / "race.jsonl", [{"text": "你好"}] * 200)
            ensure_demo_data(tmp_path)
        except Exception as e:  # noqa: BLE001 - any failure is the bug
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (tmp_path / "race.jsonl").read_text(encoding="utf-8") == '{"text": "你好"}\n' * 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "race.jsonl"]  # no temporary left


def test_demo_stage_data_keeps_its_held_out_parts_out(tmp_path):
    """The LoRA file never asks the held-out identity phrasings; the DPO file never holds a held-out sum; both
    read as the trainer's data of their kind."""
    from dataset.jsonl import JsonlFile
    from dataset.stats import detect_file_kind
    from dataset.validate import checked_lines

    lora, dpo = demo.ensure_stage_data(tmp_path)
    text = lora.read_text(encoding="utf-8")
    assert demo.IDENTITY in text and not any(q in text for q in demo.HELD_OUT_IDENTITY)
    assert all(q in text for q in demo.IDENTITY_QUESTIONS)
    pairs = [json.loads(line) for line in dpo.read_text(encoding="utf-8").splitlines()]
    asked = {p["chosen"][0]["content"] for p in pairs}
    held = {p["chosen"][0]["content"] for p in demo.dpo_pairs(held_out=True)}
    assert held and not asked & held and len(pairs) == 2 * (100 - len(demo.HELD_OUT_SUMS))
    assert detect_file_kind(JsonlFile(lora)) == "sft" and detect_file_kind(JsonlFile(dpo)) == "dpo"
    assert len(checked_lines(JsonlFile(dpo), "dpo")) == len(pairs)
