"""Ids: the v4 shape, creation-time order, uniqueness across threads and forks, and every alphabet character
in use."""

import os
import re
import string
import threading
import time
from collections import Counter

from loopgate import ids

_SHAPE = re.compile(r"^data_[A-Za-z0-9]{21}$")
_SORTED = string.digits + string.ascii_uppercase + string.ascii_lowercase


def created_ms(value: str) -> int:
    """The milliseconds since 1970 in an id's first 8 characters (base 62, ASCII order)."""
    result = 0
    for character in value.rpartition("_")[2][:8]:
        result = result * 62 + _SORTED.index(character)
    return result


def test_ids_have_the_v4_shape_and_never_repeat() -> None:
    drawn = [ids.new_id(ids.LOG) for _ in range(20_000)]  # crosses many 4 KiB refills
    assert all(_SHAPE.match(value) for value in drawn)
    assert len(set(drawn)) == len(drawn)


def test_every_character_of_the_random_part_is_used_about_equally() -> None:
    counts = Counter("".join(ids.new_id("x")[-13:] for _ in range(10_000)))
    assert set(counts) == set(string.ascii_letters + string.digits)
    expected = 130_000 / 62
    # Wrapping the 8 bytes above 248 around would make 'a'..'h' 25% more frequent than the rest.
    assert all(abs(count - expected) < 0.1 * expected for count in counts.values())


def test_threads_share_the_buffer_without_handing_out_a_character_twice() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        into.extend(ids.new_id("t") for _ in range(5_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for into in found for value in into]
    assert len(set(everything)) == len(everything) == 20_000


def test_a_forked_child_draws_its_own_ids() -> None:
    ids.new_id("warm")  # the parent now holds a buffer the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, ids.new_id("c").encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[2:] != ids.new_id("c")[2:]


def test_ids_sort_in_creation_order_and_carry_their_time() -> None:
    """Text order is creation order across milliseconds (new rows go to the end of the id index)."""
    before = time.time_ns() // 1_000_000
    drawn = []
    for _ in range(5):
        drawn.append(ids.new_id(ids.LOG))
        time.sleep(0.002)
    after = time.time_ns() // 1_000_000
    assert drawn == sorted(drawn)
    assert all(before <= created_ms(value) <= after for value in drawn)
    # Within one millisecond the random part decides: same time prefix, different ids.
    same_moment = [ids.new_id(ids.LOG) for _ in range(100)]
    assert len(set(same_moment)) == 100
    assert created_ms(same_moment[0]) <= created_ms(same_moment[-1])
