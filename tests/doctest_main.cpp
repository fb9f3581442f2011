// The main() of every doctest executable (tests/test_<header>.cpp): doctest's console
// output, plus run-time skips (HANDGRAPH_SKIP_IF, tests/test_support.hpp) that doctest 2.4
// does not have:
//  - a test case that called HANDGRAPH_SKIP_IF and failed no assertion is counted as
//    skipped, not passed, and "SKIPPED: <case>: <reason>" is printed after it;
//  - the summary line counts passed, skipped and failed test cases;
//  - the exit status is 1 if a test case failed, 77 (CTest: "Skipped") if every test case
//    that ran was skipped, 1 if no test case ran (a filter that matched nothing), else 0.
// tests/CMakeLists.txt registers each test case as its own CTest test, so each CTest
// result is exactly one test case's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <iostream>
#include <string>

#include "test_support.hpp"

namespace {

struct run_counts {
    unsigned ran = 0, passed = 0, skipped = 0, failed = 0;
};
run_counts& counts() {
    static run_counts c;
    return c;
}

// Always active (listeners run before reporters): resets the skip record when a test
// case starts and counts the outcome when it ends.
struct skip_listener : doctest::IReporter {
    explicit skip_listener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {}
    void test_case_start(const doctest::TestCaseData&) override { handgraph_test::current_skip() = {}; }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats& st) override {
        run_counts& c = counts();
        ++c.ran;
        if (!st.testCaseSuccess)
            ++c.failed;
        else if (handgraph_test::current_skip().skipped)
            ++c.skipped;
        else
            ++c.passed;
    }
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("handgraph_skips", 1, skip_listener);

// The default reporter: doctest's console reporter, with the skipped cases named and
// counted in the summary.
struct handgraph_reporter : doctest::ConsoleReporter {
    explicit handgraph_reporter(const doctest::ContextOptions& co) : doctest::ConsoleReporter(co) {}
    void test_case_end(const doctest::CurrentTestCaseStats& st) override {
        doctest::ConsoleReporter::test_case_end(st);
        const handgraph_test::skip_record& r = handgraph_test::current_skip();
        if (!st.testCaseSuccess || !r.skipped) return;
        s << "[doctest] SKIPPED: " << tc->m_name << ": " << r.reason << "\n";
        if (st.numAssertsCurrentTest > 0)
            s << "[doctest] (" << st.numAssertsCurrentTest << " assertions ran in it, all passed; the rest was skipped)\n";
    }
    void test_run_end(const doctest::TestRunStats& p) override {
        if (opt.minimal && p.numTestCasesFailed == 0) return;
        const run_counts& c = counts();
        s << "===============================================================================\n";
        s << "[doctest] test cases: " << c.ran << " | " << c.passed << " passed | " << c.skipped << " skipped | "
          << c.failed << " failed | " << (p.numTestCases - p.numTestCasesPassingFilters) << " not selected\n";
        s << "[doctest] assertions: " << p.numAsserts << " | " << (p.numAsserts - p.numAssertsFailed) << " passed | "
          << p.numAssertsFailed << " failed\n";
        s << "[doctest] Status: "
          << (c.failed || p.numTestCasesFailed ? "FAILURE!" : c.ran && c.skipped == c.ran ? "SKIPPED" : "SUCCESS!")
          << std::endl;
    }
};
DOCTEST_REGISTER_REPORTER("handgraph", 1, handgraph_reporter);

// Whether the command line picks reporters (-r=, --reporters=, with doctest's -dt- prefix).
bool reporters_given(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        std::size_t k = a.find_first_not_of('-');
        if (k == 0 || k == std::string::npos) continue;
        a = a.substr(k);
        if (a.compare(0, 3, "dt-") == 0) a = a.substr(3);
        if (a.compare(0, 2, "r=") == 0 || a.compare(0, 10, "reporters=") == 0) return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    doctest::Context context;
    if (!reporters_given(argc, argv)) context.setOption("reporters", "handgraph");
    context.applyCommandLine(argc, argv);
    const int rc = context.run();
    if (context.shouldExit()) return rc;  // --list-test-cases, --help, --version, ...
    const run_counts& c = counts();
    if (rc != 0 || c.failed) return rc != 0 ? rc : 1;
    if (c.ran == 0) {
        std::cerr << "error: no test case ran (does the --test-case filter match a test case's name?)\n";
        return 1;
    }
    return c.skipped == c.ran ? 77 : 0;
}
