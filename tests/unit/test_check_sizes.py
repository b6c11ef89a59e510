"""tools/check_sizes.py: no function in mindcv_shufflenet/ over 80 lines, no module over 600."""

import check_sizes  # tools/ is on the tests' path (pyproject.toml)


def test_the_package_has_no_overlong_function_or_module(capsys):
    assert check_sizes.main([]) == 0
    assert capsys.readouterr().out == ""


def test_overlong_functions_and_modules_are_listed_with_their_length(tmp_path, capsys):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (package / "sub" / "long.py").write_text(f"def long_one():\n{body}\n\n\ndef short_one():\n    return 1\n")
    (package / "big.py").write_text("x = 1\n" * 12)
    (package / "fine.py").write_text("def f():\n    return 1\n")
    assert check_sizes.main([str(package), "--max-module", "10"]) == 1
    assert capsys.readouterr().out.splitlines() == ["pkg/big.py: 12 lines", "pkg/sub/long.py: 85 lines",
                                                    "pkg/sub/long.py:1 long_one: 81 lines"]
    assert check_sizes.main([str(package), "--max-module", "100", "--max-function", "81"]) == 0
