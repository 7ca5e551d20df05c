"""The download catalogue lists MiniMind2's and minimind-3's weights, tokenizers and t2t data; minimind-3's files,
named like MiniMind2's upstream, are typed with a prefix and land in folders of their own."""
from minimind_tui.interop.catalogue import CATALOGUE, select
from minimind_tui.interop.download import download


def test_minimind3_weights_and_tokenizer_have_their_own_sources_and_folders(tmp_path):
    names = {e.name for e in CATALOGUE}
    for needed in ("pretrain_t2t_mini.jsonl", "pretrain_t2t.jsonl", "sft_t2t_mini.jsonl", "sft_t2t.jsonl",
                   "dpo_512.pth", "full_sft_768.pth", "minimind-3/full_sft_768.pth", "minimind-3/pretrain_768_moe.pth",
                   "minimind-3/tokenizer.json", "minimind-3/tokenizer_config.json"):
        assert needed in names
    assert len(names) == len(CATALOGUE)  # every name types one file
    weights = select(["minimind-3/full_sft_768.pth"])[0]
    assert weights.file == "full_sft_768.pth"
    assert weights.urls() == ["https://www.modelscope.cn/models/gongjy/minimind-3-pytorch/resolve/master/full_sft_768.pth",
                              "https://huggingface.co/jingyaogong/minimind-3-pytorch/resolve/main/full_sft_768.pth"]
    assert weights.urls(mirror="http://m/") == ["http://m/full_sft_768.pth"]
    assert weights.destination(tmp_path) == tmp_path / "out" / "minimind-3"
    assert select(["full_sft_768.pth"])[0].urls()[0].startswith("https://www.modelscope.cn/models/gongjy/MiniMind2-")
    tok = select(["tokenizer-3"])
    assert [e.file for e in tok] == ["tokenizer.json", "tokenizer_config.json"]
    assert tok[0].urls("hf")[0] == "https://huggingface.co/jingyaogong/minimind-3/resolve/main/tokenizer.json"
    assert tok[0].destination(tmp_path) == tmp_path / "model" / "minimind-3_tokenizer"
    assert {e.name for e in select(["minimind-3/*"])} >= {"minimind-3/full_sft_768.pth", "minimind-3/tokenizer.json"}
    assert [e.name for e in select(["quickstart-3"])][:2] == ["pretrain_t2t_mini.jsonl", "sft_t2t_mini.jsonl"]


def test_a_prefixed_entry_is_saved_under_its_file_name(tmp_path):
    entry = select(["minimind-3/tokenizer.json"])[0]
    folder = entry.destination(tmp_path)
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")  # already there: kept, nothing fetched
    assert download(entry, folder, urls=["http://127.0.0.1:9/never"]) == folder / "tokenizer.json"


def test_minimind3s_current_data_files_are_listed_with_both_hosts(tmp_path):
    # minimind-3's README lists these under ./dataset; MiniMind2's added rlaif-mini.jsonl.
    for name in ("rlaif.jsonl", "agent_rl.jsonl", "agent_rl_math.jsonl", "rlaif-mini.jsonl", "lora_exam.jsonl"):
        entry = select([name])[0]
        assert entry.kind == "dataset" and entry.destination(tmp_path) == tmp_path / "dataset"
        assert entry.urls() == [f"https://www.modelscope.cn/datasets/gongjy/minimind_dataset/resolve/master/{name}",
                                f"https://huggingface.co/datasets/jingyaogong/minimind_dataset/resolve/main/{name}"]
    lora = select(["minimind-3/lora_exam_768.pth"])[0]
    assert lora.urls("hf")[0] == "https://huggingface.co/jingyaogong/minimind-3-pytorch/resolve/main/lora_exam_768.pth"
    assert lora.destination(tmp_path, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "minimind-3"
    assert {e.name for e in select(["*_t2t*"])} == {"pretrain_t2t_mini.jsonl", "pretrain_t2t.jsonl",
                                                     "sft_t2t_mini.jsonl", "sft_t2t.jsonl"}
