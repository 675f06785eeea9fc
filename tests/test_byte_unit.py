"""data.unit byte: any text, 256 ids, and sampling that never prints broken UTF-8."""

from pathlib import Path

import numpy as np
import pytest

from charlm.data import ByteVocab, vocab_from_payload

from helpers import CONFIGS, charlm

KOREAN = Path(__file__).parent / "fixtures" / "korean.txt"


def test_byte_vocab_round_trip_and_incremental_decode():
    vocab = ByteVocab()
    ids = vocab.encode("한글 ok")
    assert ids.dtype == np.uint8 and len(ids) == 3 * 2 + 3
    assert vocab.decode(ids) == "한글 ok"
    decode = vocab.stream_decoder()
    pieces = [decode([int(i)]) for i in ids]
    assert pieces[:3] == ["", "", "한"]  # a character appears once its 3 bytes arrived
    assert "".join(pieces) == "한글 ok"
    assert vocab.decode([0xED, 0x95, 0x41]) == "\ufffdA"  # invalid sequence replaced
    assert decode([0xED, 0x95]) == "" and decode([], True) == "\ufffd"  # truncated at the end
    assert isinstance(vocab_from_payload(vocab.to_payload()), ByteVocab)


@pytest.mark.parametrize("unit", ["char", "byte"])
def test_train_and_sample_korean(tmp_path, unit):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    charlm("train", "--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--max-steps", 30,
           "--no-progress", "--seed", 1, "--run-name", unit, "--set", f"data.unit={unit}",
           cwd=tmp_path)
    out = charlm("sample", unit, "--length", 300, "--seed", 2, "--prime", "오늘", cwd=tmp_path)
    text = out.stdout
    assert text.startswith("오늘") and len(text) > 50
    hangul = sum("\uac00" <= c <= "\ud7a3" for c in text)
    assert hangul > 20, text  # it learned to write Hangul syllables, not only spaces
    info = charlm("inspect", unit, cwd=tmp_path).stdout
    assert ("vocab_size 256 (bytes" in info) == (unit == "byte")
    several = charlm("sample", unit, "--length", 100, "--num-samples", 3, "--seed", 2,
                     cwd=tmp_path).stdout
    assert several.count("\n\n") >= 2
    score = charlm("eval", unit, "--json", cwd=tmp_path).stdout
    assert '"loss_nats"' in score


def test_byte_model_refuses_visualize(tmp_path):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    charlm("train", "--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--max-steps", 2,
           "--no-progress", "--seed", 1, "--run-name", "b", "--set", "data.unit=byte",
           cwd=tmp_path)
    proc = charlm("visualize", "b", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "reads bytes" in proc.stderr


def test_byte_prime_keeps_its_bytes():
    from charlm.sampling import prepare_prime

    _, ids = prepare_prime(ByteVocab(), "a\r\nb é")
    assert bytes(ids.tolist()) == "a\r\nb é".encode()


def test_init_from_keeps_the_unit_even_when_given_the_default(tmp_path):
    (tmp_path / "ko.txt").write_text(KOREAN.read_text(encoding="utf-8") * 12, encoding="utf-8")
    base = ["--config", CONFIGS / "tiny.yaml", "--data", "ko.txt", "--no-progress", "--seed", 1]
    charlm("train", *base, "--max-steps", 2, "--run-name", "b", "--set", "data.unit=byte",
           cwd=tmp_path)
    for clash in (["--set", "data.unit=char"], ["--hidden-size", 256]):  # both are defaults
        proc = charlm("train", *base, "--max-steps", 2, "--init-from", "b", *clash,
                      cwd=tmp_path, check=False)
        assert proc.returncode == 1 and "--init-from keeps the checkpoint's" in proc.stderr
        assert ("data.unit 'byte' -> 'char'" in proc.stderr) or \
            ("model.hidden_size 32 -> 256" in proc.stderr), proc.stderr
