"""TensorBoard writers: a failing write warns once and the run goes on."""

import errno

from helpers import TRAIN, run_ok

from charlm.store.checkpoint import load_checkpoint


def test_a_failing_event_write_warns_and_the_run_goes_on(trained, monkeypatch):
    from tensorboard.summary.writer import record_writer

    work, corpus, _ = trained
    original, calls = record_writer.RecordWriter.write, [0]

    def write(self, data):
        calls[0] += 1
        if calls[0] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    result = run_ok(*TRAIN, "--data", corpus, "--run-name", "full", "--max-steps", 40,
                    cwd=work)
    assert "cannot write TensorBoard events" in result.stderr and "done: run full" in \
        result.stdout
    assert load_checkpoint(work / "checkpoints" / "full" / "last.pt")["state"]["step"] == 40
