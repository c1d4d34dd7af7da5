"""The policy: what automation may decide alone, and how (DESIGN §5)."""

from core.policy.loader import LoadedPolicy, format_path, parse_policy, policy_version
from core.policy.schema import BUILTIN_TRIGGERS, DEFAULT_HARD_TRIGGERS, Policy

__all__ = [
    "BUILTIN_TRIGGERS",
    "DEFAULT_HARD_TRIGGERS",
    "LoadedPolicy",
    "Policy",
    "format_path",
    "parse_policy",
    "policy_version",
]
