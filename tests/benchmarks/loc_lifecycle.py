"""Lines of code of the run lifecycle at two commits (issue 19: the engine should make it smaller).

Run from the repository root (not collected by pytest):

    .venv/bin/python -m tests.benchmarks.loc_lifecycle                 # b347094 against HEAD
    .venv/bin/python -m tests.benchmarks.loc_lifecycle --before b347094 --after main
    .venv/bin/python -m tests.benchmarks.loc_lifecycle --functions     # per function, both sides

The files are read from git (`git show <rev>:<path>`), so the working tree does not matter.
Per file: raw lines (what `wc -l` counts) and code lines: lines holding a token other than a
comment, a newline or a docstring (a string expression statement: a module's, class's or
function's first statement, or any bare string), found with `tokenize` and `ast`.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tokenize

# The run lifecycle as issue 19 names it: runs, liveness, instances, claims, writer/spill,
# interactions; then what the engine brought.
LIFECYCLE = (
    "bot/slack/runs.py",
    # `Runs` split into its parts (issue 19): each was in runs.py before.
    "bot/slack/requests.py",
    "bot/slack/admission.py",
    "bot/slack/opening.py",
    "bot/slack/recording.py",
    "bot/slack/retries.py",
    "bot/slack/liveness.py",
    "bot/ledger/instances.py",
    "bot/ledger/claims.py",
    "bot/ledger/writer.py",
    "bot/ledger/spill.py",
    "bot/ledger/interactions.py",
)
ENGINE = ("bot/slack/engine.py", "bot/slack/workflows.py", "bot/slack/lease.py")

SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
    tokenize.ENCODING,
}


def source(rev: str, path: str) -> str | None:
    shown = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def docstring_lines(text: str) -> set[int]:
    """Line numbers of bare string statements (docstrings and the like)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            end = node.end_lineno or node.lineno
            lines.update(range(node.lineno, end + 1))
    return lines


def code_line_numbers(text: str) -> set[int]:
    docs = docstring_lines(text)
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in SKIPPED:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in docs:
                lines.add(line)
    return lines


def code_lines(text: str) -> int:
    return len(code_line_numbers(text))


def per_function(text: str) -> dict[str, int]:
    """Code lines per function or method (`Class.method`; a class's own lines, its fields
    and decorators, as `Class`), and the rest of the module as `(imports, constants)`."""
    code = code_line_numbers(text)
    counted: dict[str, int] = {}
    taken: set[int] = set()

    def walk(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            span = set(range(first, (node.end_lineno or node.lineno) + 1)) & code
            if isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}.")
            own = span - taken
            taken.update(own)
            counted[f"{prefix}{node.name}"] = len(own)

    walk(ast.parse(text).body, "")
    counted["(imports, constants)"] = len(code - taken)
    return counted


def count(rev: str, path: str) -> tuple[int, int] | None:
    text = source(rev, path)
    if text is None:
        return None
    return len(text.splitlines()), code_lines(text)


def cell(counted: tuple[int, int] | None) -> tuple[str, str]:
    return ("-", "-") if counted is None else (f"{counted[1]:,}", f"{counted[0]:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="b347094")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument(
        "--functions", action="store_true", help="code lines per function, on both sides"
    )
    args = parser.parse_args()
    if args.functions:
        functions(args.before, args.after)
        return
    revs = {
        side: subprocess.run(
            ["git", "rev-parse", "--short", rev], capture_output=True, text=True, check=True
        ).stdout.strip()
        for side, rev in (("before", args.before), ("after", args.after))
    }
    print(
        f"| file | code lines before ({revs['before']}) | after ({revs['after']}) "
        "| raw lines before | after |"
    )
    print("|---|---|---|---|---|")
    totals = {group: [0, 0, 0, 0] for group in ("lifecycle", "engine")}
    for group, paths in (("lifecycle", LIFECYCLE), ("engine", ENGINE)):
        for path in paths:
            before, after = count(args.before, path), count(args.after, path)
            (bc, br), (ac, ar) = cell(before), cell(after)
            print(f"| {path} | {bc} | {ac} | {br} | {ar} |")
            for i, counted in enumerate((before, after)):
                if counted is not None:
                    totals[group][i] += counted[1]
                    totals[group][2 + i] += counted[0]
    lc, ec = totals["lifecycle"], totals["engine"]
    both = [a + b for a, b in zip(lc, ec, strict=True)]
    for label, t in (
        ("lifecycle files (the issue's list)", lc),
        ("engine files (new)", ec),
        ("all of the above", both),
    ):
        print(f"| **{label}** | {t[0]:,} | {t[1]:,} | {t[2]:,} | {t[3]:,} |")


def functions(before_rev: str, after_rev: str) -> None:
    """Per function: what went, what came, what changed (unchanged ones are left out)."""
    print(f"| file | function | before ({before_rev}) | after ({after_rev}) |")
    print("|---|---|---|---|")
    for path in (*LIFECYCLE, *ENGINE):
        sides = [source(rev, path) for rev in (before_rev, after_rev)]
        before, after = (per_function(text) if text else {} for text in sides)
        for name in [*before, *(n for n in after if n not in before)]:
            old, new = before.get(name), after.get(name)
            if old != new:
                print(f"| {path} | {name} | {old if old is not None else '-'} "
                      f"| {new if new is not None else '-'} |")  # fmt: skip


if __name__ == "__main__":
    main()
