"""The protocol's pure decisions (no database)."""

import pytest

from apps.live import frames
from apps.live.frames import BadFrame


def test_classify_skips_what_was_sent_sends_the_next_and_refills_a_gap():
    assert frames.classify(5, 4) == "skip"
    assert frames.classify(5, 5) == "skip"
    assert frames.classify(5, 6) == "send"
    assert frames.classify(5, 9) == "refill"


def test_a_snapshot_is_needed_only_when_events_after_last_seq_are_gone():
    assert not frames.needs_snapshot(0, 1)
    assert not frames.needs_snapshot(3, 4)
    assert frames.needs_snapshot(3, 5)
    assert not frames.needs_snapshot(0, None)  # no events at all: nothing to replay


@pytest.mark.parametrize("text, code", [
    ("{", "bad_json"), ("[]", "bad_frame"), ('{"type": 3}', "bad_frame"),
    ("x" * (frames.MAX_FRAME_BYTES + 1), "bad_frame")])
def test_parse_names_what_is_wrong(text, code):
    with pytest.raises(BadFrame) as caught:
        frames.parse(text, None)
    assert caught.value.code == code


def test_last_seq_on_a_client_stream_maps_execution_ids():
    assert frames.client_last_seqs({"last_seq": {"e1": 4}}) == {"e1": 4}
    assert frames.client_last_seqs({"last_seq": 0}) == {}
    with pytest.raises(BadFrame, match="maps execution ids"):
        frames.client_last_seqs({"last_seq": 7})
    with pytest.raises(BadFrame, match="integer >= 0"):
        frames.client_last_seqs({"last_seq": {"e1": True}})
