"""Lists the CTest tests of Python test files (called by tests/CMakeLists.txt at configure
time; reads the files with `ast`, imports nothing):

    list_python_tests.py tests/test_a.py ...

prints one line per CTest test, tab-separated: file, test name, unittest names to run:

    tests/test_a.py<TAB>Images<TAB>Images.test_x Images.test_y
    tests/test_a.py<TAB>Images.test_z<TAB>Images.test_z

One test per unittest.TestCase class, holding the methods that can only be skipped with
the whole class or file (class decorators, setUp / setUpClass, the module's exit 77); a
method that can skip on its own (a unittest.skip* decorator, self.skipTest or SkipTest in
its body or in a function or method of the file it calls, directly or not) is a test of
its own. So every CTest test is either wholly run or wholly skipped,
and CTest's "Passed" / "Skipped" is true of all of it (tests/unittest_support.py fails a
class test whose methods were partly skipped, naming the method to split out).
A file without TestCase classes is one test named after the file (empty unittest names).
"""
import ast
import sys


def is_testcase_base(node, known):
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    return name == "TestCase" or name in known


def skips_directly(fn):
    """A unittest.skip* decorator, or self.skipTest / SkipTest in the body."""
    for d in fn.decorator_list:
        if "skip" in ast.unparse(d).lower():
            return True
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and node.attr in ("skipTest", "SkipTest"):
            return True
        if isinstance(node, ast.Name) and node.id == "SkipTest":
            return True
    return False


def calls(fn):
    """Names called in fn's body: f(...) and self.f(...) / cls.f(...)."""
    out = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.add(f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("self", "cls"):
                out.add(f.attr)
    return out


def skipping_functions(functions):
    """Of {name: FunctionDef}, those that can skip: directly, or by calling one that can."""
    skipping = {n for n, fn in functions.items() if skips_directly(fn)}
    changed = True
    while changed:
        changed = False
        for n, fn in functions.items():
            if n not in skipping and calls(fn) & skipping:
                skipping.add(n)
                changed = True
    return skipping


def tests_of(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    classes = {}  # name -> (ClassDef, [base names in this file])
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(is_testcase_base(b, classes) for b in node.bases):
            classes[node.name] = (node, [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes])

    def methods(name):
        node, bases = classes[name]
        found = {}
        for b in bases:  # inherited test methods first, then the class's own (which override)
            found.update(methods(b))
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if item.name.startswith("test"):
                    found[item.name] = item
                else:
                    found.pop(item.name, None)
        return found

    def helpers(name):  # every function of the class and its in-file bases, by name
        node, bases = classes[name]
        found = {}
        for b in bases:
            found.update(helpers(b))
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[item.name] = item
        return found

    module_functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    out = []
    for name in classes:
        # setUp / setUpClass skips apply to every method alike: not counted as "alone".
        functions = dict(module_functions)
        functions.update({n: fn for n, fn in helpers(name).items() if n not in ("setUp", "setUpClass")})
        skipping = skipping_functions(functions)
        together, alone = [], []
        for m, fn in methods(name).items():
            (alone if m in skipping else together).append(m)
        if together:
            out.append((name, ["%s.%s" % (name, m) for m in together]))
        for m in alone:
            out.append(("%s.%s" % (name, m), ["%s.%s" % (name, m)]))
    return out


def main():
    for path in sys.argv[1:]:
        found = tests_of(path)
        if not found:
            print("%s\t\t" % path)
        for test, names in found:
            print("%s\t%s\t%s" % (path, test, " ".join(names)))


if __name__ == "__main__":
    main()
