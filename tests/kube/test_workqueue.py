"""The keyed work queue: de-duplication, one worker per key, timers, rate-limited retries, shutdown.

Delays here are tens of milliseconds and every wait has a timeout, so a broken queue fails instead of hanging;
nothing asserts how fast anything ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from helper.backoff import Backoff
from webhook.kube.workqueue import ShutDown, WorkQueue, run_workers


def exact_backoff(first: float = 0.01, cap: float = 0.08) -> Callable[[], Backoff]:
    """Backoff without jitter, so the delays can be compared exactly."""
    return lambda: Backoff(first=first, cap=cap, jitter=(1.0, 1.0))


@pytest.fixture
def queue() -> Iterator[WorkQueue[str]]:
    work: WorkQueue[str] = WorkQueue("test", backoff=exact_backoff())
    yield work
    work.shut_down()


def nothing_more(queue: WorkQueue[str], wait: float = 0.05) -> bool:
    """True when no key comes up within ``wait`` seconds."""
    try:
        key = queue.get(timeout=wait)
    except TimeoutError:
        return True
    queue.done(key)
    return False


def test_a_key_added_several_times_is_processed_once(queue: WorkQueue[str]) -> None:
    for key in ("a", "b", "a", "a", "b", "c"):
        queue.add(key)
    assert len(queue) == 3
    taken = [queue.get(timeout=1) for _ in range(3)]
    assert taken == ["a", "b", "c"]  # first-come order, duplicates folded into the first
    for key in taken:
        queue.done(key)
    assert len(queue) == 0 and nothing_more(queue)


def test_a_key_is_never_handed_to_two_getters_at_once(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout=1) == "a"
    queue.add("a")  # changed while being processed
    queue.add("b")
    assert queue.get(timeout=1) == "b", "another key is not held up"
    assert len(queue) == 0 and nothing_more(queue), "the key being processed was handed out again"
    queue.done("b")
    queue.done("a")  # only now is it queued again, once
    assert queue.get(timeout=1) == "a"
    queue.done("a")
    assert nothing_more(queue)


def test_a_key_done_without_being_re_added_is_not_processed_again(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.done(queue.get(timeout=1))
    assert nothing_more(queue)


def test_workers_process_a_key_re_added_during_processing_once_more_and_never_concurrently() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    started = threading.Semaphore(0)
    release = threading.Event()
    lock = threading.Lock()
    calls: list[str] = []
    active = {"now": 0, "most": 0}

    def handle(key: str) -> None:
        with lock:
            calls.append(key)
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        started.release()
        release.wait(5)
        with lock:
            active["now"] -= 1

    run_workers(queue, 4, handle)
    try:
        queue.add("a")
        assert started.acquire(timeout=5), "no worker took the key"
        for _ in range(3):
            queue.add("a")  # three changes while the first run is blocked: one more run
        assert not started.acquire(timeout=0.1), "a second worker processed the same key concurrently"
        assert calls == ["a"]
        release.set()
        assert started.acquire(timeout=5), "the key re-added during processing was not processed again"
        assert not started.acquire(timeout=0.1), "the re-adds were not folded into one"
        assert calls == ["a", "a"] and active["most"] == 1
    finally:
        release.set()
        queue.shut_down()


def test_add_after_hands_keys_out_in_due_order_and_the_earliest_timer_wins(queue: WorkQueue[str]) -> None:
    queue.add_after("b", 0.10)
    queue.add_after("a", 0.06)
    queue.add_after("c", 0.30)
    queue.add_after("c", 0.02)  # earlier: replaces the later timer
    queue.add_after("a", 0.50)  # later: ignored
    order = []
    for _ in range(3):
        key = queue.get(timeout=2)
        order.append(key)
        queue.done(key)
    assert order == ["c", "a", "b"]
    assert nothing_more(queue, 0.1), "a replaced timer fired as well"


def test_a_key_waits_for_its_timer_unless_added_now(queue: WorkQueue[str]) -> None:
    queue.add_after("x", 30)
    assert len(queue) == 0 and nothing_more(queue), "handed out before its timer"
    queue.add("x")  # now beats the timer
    assert len(queue) == 1 and queue.get(timeout=1) == "x"
    queue.done("x")
    queue.add_after("y", 0.05)
    queue.add("y")
    assert queue.get(timeout=1) == "y"
    queue.done("y")
    assert nothing_more(queue, 0.2), "the timer that add() superseded fired as well"


def test_add_after_of_a_key_being_processed_comes_back_after_done(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout=1) == "a"
    queue.add_after("a", 0.02)  # e.g. the handler found it too early
    assert nothing_more(queue, 0.1), "handed out while still being processed"
    queue.done("a")
    assert queue.get(timeout=1) == "a"
    queue.done("a")


def test_many_replaced_timers_still_fire_once(queue: WorkQueue[str]) -> None:
    for step in range(300):
        queue.add_after("k", 10 - step * 0.01)  # each one earlier than the last
    queue.add_after("k", 0.02)
    assert queue.get(timeout=1) == "k"
    queue.done("k")
    assert nothing_more(queue, 0.1)


def test_rate_limited_retries_back_off_per_key_until_forgotten(queue: WorkQueue[str]) -> None:
    delays = [queue.add_rate_limited("k") for _ in range(5)]
    assert delays == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08])  # doubling up to the cap
    assert queue.num_requeues("k") == 5
    assert queue.add_rate_limited("other") == pytest.approx(0.01), "keys back off independently"
    assert queue.add_rate_limited("k", at_least=3.0) == 3.0  # e.g. Retry-After
    queue.forget("k")
    assert queue.num_requeues("k") == 0
    assert queue.add_rate_limited("k") == pytest.approx(0.01)
    taken = {queue.get(timeout=1), queue.get(timeout=1)}
    assert taken == {"k", "other"}  # a rate-limited key does come back


def test_the_overall_token_bucket_spreads_retries_of_many_keys() -> None:
    queue: WorkQueue[str] = WorkQueue("test", backoff=exact_backoff(), rate=1.0, burst=2)
    try:
        delays = [queue.add_rate_limited(f"k{index}") for index in range(4)]
        assert delays[:2] == pytest.approx([0.01, 0.01])  # the burst
        assert delays[2] == pytest.approx(1.0, abs=0.05) and delays[3] == pytest.approx(2.0, abs=0.05)
    finally:
        queue.shut_down()


def test_shut_down_wakes_every_getter_and_drops_what_is_queued() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    outcomes: list[str] = []
    lock = threading.Lock()

    def getter() -> None:
        try:
            queue.get(timeout=10)
            result = "key"
        except ShutDown:
            result = "shut down"
        except TimeoutError:
            result = "timeout"
        with lock:
            outcomes.append(result)

    queue.add("processing")
    assert queue.get(timeout=1) == "processing"
    threads = [threading.Thread(target=getter, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    queue.add_after("later", 0.05)
    queue.add("processing")  # to be re-queued by done(): dropped by the shutdown
    queue.shut_down()
    for thread in threads:
        thread.join(5)
    assert outcomes == ["shut down"] * 3
    assert queue.shutting_down and len(queue) == 0
    queue.done("processing")
    queue.add("new")
    with pytest.raises(ShutDown):
        queue.get(timeout=1)


def test_workers_retry_a_key_whose_handler_raised() -> None:
    queue: WorkQueue[str] = WorkQueue("test", backoff=exact_backoff())
    calls: list[str] = []
    second = threading.Event()

    def handle(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("surprise")
        second.set()

    threads = run_workers(queue, 2, handle)
    try:
        queue.add("a")
        assert second.wait(5), "the key was dropped after its handler raised"
        assert calls == ["a", "a"] and queue.num_requeues("a") == 1
    finally:
        queue.shut_down()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads), "workers outlived shut_down()"
