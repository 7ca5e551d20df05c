"""Streaming detokenizer: never a broken character, whatever the token boundaries."""
from pathlib import Path

import pytest

from model import Tokenizer
from model.streaming import StreamDecoder, stream_text

DEMO_TOKENIZER = Path(__file__).resolve().parents[2] / "minimind_tui" / "assets" / "demo_tokenizer"
TEXT = "北京是中国的首都。Hello, 世界! 😀🎉 emoji 👩‍💻 and ½ café"


def tokenizers(ref_tokenizer=None):
    found = []
    if (DEMO_TOKENIZER / "tokenizer.json").is_file():
        found.append(Tokenizer.from_dir(DEMO_TOKENIZER))
    if ref_tokenizer is not None:
        found.append(ref_tokenizer)
    return found


def check_pieces(tok: Tokenizer, text: str):
    ids = tok.encode(text)
    pieces = list(stream_text(tok, ids))
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    return ids, pieces


def test_reference_tokenizer_streams_whole_characters(ref_tokenizer):
    ids, pieces = check_pieces(ref_tokenizer, TEXT)
    # The test means something only if some character really is split across tokens.
    split = [i for i in ids if ref_tokenizer.token_bytes(i) and not _is_complete_utf8(ref_tokenizer.token_bytes(i))]
    assert split, "expected the emoji to span several byte-level tokens"


def test_demo_tokenizer_streams_whole_characters():
    if not (DEMO_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip("bundled demo tokenizer not built yet")
    tok = Tokenizer.from_dir(DEMO_TOKENIZER)
    ids, pieces = check_pieces(tok, TEXT)
    assert len(pieces) > 5  # really incremental, not one piece at the end


def test_special_tokens_are_skipped_or_kept(ref_tokenizer):
    ids = [ref_tokenizer.bos_token_id] + ref_tokenizer.encode("你好") + [ref_tokenizer.eos_token_id]
    assert "".join(stream_text(ref_tokenizer, ids)) == "你好"
    assert "".join(stream_text(ref_tokenizer, ids, skip_special_tokens=False)) == "<s>你好</s>"


def test_truncated_character_at_the_end_becomes_one_replacement(ref_tokenizer):
    ids = ref_tokenizer.encode("好😀")
    decoder = StreamDecoder(ref_tokenizer)
    # Feed all but the last token of the emoji: nothing broken comes out before finish().
    out = "".join(decoder.feed(i) for i in ids[:-1])
    assert out == "好"
    assert decoder.finish() == "\ufffd"


def _is_complete_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
