"""How the Python test files run and report (their `if __name__ == "__main__":` calls
`unittest_support.main()`, or `run()` when they have cleanup to do):

    python3 tests/test_x.py [Class | Class.method ...]

Runs the named tests of the file (all without names), then prints a summary: how many ran,
passed, were skipped (each with its reason: "SKIPPED: <test>: <reason>") and failed.
Exit status:
    1   a test failed or raised, or no test ran;
    77  every test that ran was skipped (CTest: "Skipped");
    0   otherwise.
With HANDGRAPH_CTEST_TEST=1 in the environment (tests/CMakeLists.txt sets it: each CTest
test is one class or one method, tests/list_python_tests.py), a run in which some tests passed and others were skipped
fails: its CTest result would call the skipped ones passed. The message names the
methods to give their own CTest test (which list_python_tests.py does for every method
that visibly skips on its own).

A whole file skips by printing "SKIPPED: <reason>" and exiting with 77 before this runs
(a missing module, binary or data set).
"""
import os
import sys
import unittest


def name_of(test):
    """Class.method (or "setUpClass (Class)"), without the module."""
    text = test.id() if isinstance(test, unittest.TestCase) else test.description
    return text.replace("__main__.", "")


def run(argv=None, module="__main__"):
    argv = list(sys.argv[1:] if argv is None else argv)
    ctest = os.environ.get("HANDGRAPH_CTEST_TEST") == "1"
    names = argv
    mod = sys.modules[module]
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(names, mod) if names else loader.loadTestsFromModule(mod)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    sys.stdout.flush()

    # Skips of whole classes by setUpClass (unittest._ErrorHolder) are not in testsRun.
    skipped_in_run = sum(1 for t, _ in result.skipped if isinstance(t, unittest.TestCase))
    problems = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - skipped_in_run - problems
    print("unittest: %d ran | %d passed | %d skipped | %d failed" % (result.testsRun, passed, len(result.skipped),
                                                                      problems))
    for t, reason in result.skipped:
        print("SKIPPED: %s: %s" % (name_of(t), reason))
    if problems or not result.wasSuccessful():
        return 1
    if passed == 0:
        if result.skipped:
            return 77
        print("error: no test ran (names: %s)" % (" ".join(names) or "all"))
        return 1
    if result.skipped and ctest:
        print("error: this CTest test passed some tests and skipped others (%s); give each method that can "
              "skip on its own its own CTest test (tests/list_python_tests.py)"
              % ", ".join(name_of(t) for t, _ in result.skipped))
        return 1
    return 0


def main(argv=None):
    sys.exit(run(argv))
