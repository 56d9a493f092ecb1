"""The dashboard's heap freezing (dashboard/heap.py): once per batch of imports, and garbage is freed, not kept."""

import gc
import sys
import types
import weakref

from dashboard import heap


class Cycle:
    """An object that only the cycle collector can free."""

    def __init__(self) -> None:
        self.me = self


def test_the_heap_is_frozen_after_imports_and_garbage_is_freed_first():
    heap.freeze_after_imports()
    assert not heap.freeze_after_imports()  # nothing imported since: no collection, no freeze
    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage
    sys.modules["convnets_test_new_module"] = types.ModuleType("convnets_test_new_module")
    try:
        assert heap.freeze_after_imports()
        assert gone() is None  # collected before the freeze, not frozen with the living
        assert gc.get_freeze_count() > 0
        assert not heap.freeze_after_imports()
    finally:
        del sys.modules["convnets_test_new_module"]
