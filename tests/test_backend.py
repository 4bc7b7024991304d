import threading

import pytest
import torch

from facedist.backend import Backend, strict_fp32, tf32_enabled


def test_strict_fp32_turns_tf32_off_inside_and_back_on_after(tf32_on):
    assert tf32_enabled()
    with strict_fp32():
        assert not tf32_enabled()
    assert tf32_enabled()


def test_overlapping_threads_keep_tf32_off_until_the_last_leaves(tf32_on):
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with strict_fp32():
            a_inside.set()
            b_inside.wait()
        a_left.set()

    def b():
        a_inside.wait()
        with strict_fp32():
            b_inside.set()
            a_left.wait()
            seen["after a left"] = tf32_enabled()

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after a left": False}
    assert tf32_enabled()


def test_cpu_backend_defaults():
    b = Backend.create("cpu")
    assert (b.device, b.precision, b.batched_detection) == (torch.device("cpu"), "fp32", False)
    assert (b.chunk_images, b.embed_batch_size, b.decode_workers) == (16, 32, 2)
    assert b.embed_dtype == torch.float32
    assert Backend.create("cpu", batched_detection=True).batched_detection


def test_faster_modes_are_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        Backend.create("cpu", "fp16")
    with pytest.raises(ValueError, match="precision takes one of fp32, fp16"):
        Backend.create("cpu", "bf16")
