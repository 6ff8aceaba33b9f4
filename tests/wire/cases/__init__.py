# Table-driven cases for the shared sans-IO code (wire/*, the dock's slot state
# machine and journal), one module per part. Plain asserts, no pytest: these
# files run under MicroPython (see test_both_interpreters.py) and under
# CPython, and must pass the same way.
from . import dock, link, messages, peripherals

CASES = [getattr(m, k) for m in (link, messages, peripherals, dock)
         for k in sorted(dir(m)) if k.startswith("case_")]


def run_all():
    import gc
    failed = 0
    for fn in CASES:
        gc.collect()  # each case starts from a tidy heap (64K under MicroPython)
        try:
            fn()
            print("ok", fn.__name__)
        except Exception as e:
            failed += 1
            print("FAIL", fn.__name__, repr(e))
    print("%d passed, %d failed" % (len(CASES) - failed, failed))
    return failed

