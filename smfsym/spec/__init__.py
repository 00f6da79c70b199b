"""Problem specifications for the command line: TOML files (data, validated) or Python files (code, trusted).

- :mod:`smfsym.spec.expr`: the allow-list expression parser, the only route from
  a spec string to a sympy object (docs/theory.md §8);
- :mod:`smfsym.spec.schema`: the typed schema, section -> key -> (type, default,
  range, help);
- :mod:`smfsym.spec.data_files`: the bounded CSV reader of empirical data sets;
- :mod:`smfsym.spec.load`: :func:`load_spec`, choosing the loader by file name
  (``.py`` in any case runs Python: trusted files only; anything else is TOML).
"""
from .expr import ALLOWED_FUNCTIONS, CONSTANTS, SpecError, parse_expression
from .load import Spec, is_python_spec, load_spec, spec_from_dict
from .schema import LAWS, SCHEMA, Key, reference

__all__ = ["Spec", "SpecError", "load_spec", "spec_from_dict", "parse_expression", "is_python_spec",
           "ALLOWED_FUNCTIONS", "CONSTANTS", "SCHEMA", "LAWS", "Key", "reference"]
