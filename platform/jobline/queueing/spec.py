"""Moved to jobline.jobs.spec: the queues.yaml model is the domain's configuration.

Re-exported here so code written against the old path keeps importing.
"""

from jobline.jobs.spec import (
    BUILTIN_POLICY,
    POLICY_FIELDS,
    Defaults,
    DomainSpec,
    Fairness,
    JobType,
    JobTypeSpec,
    Policy,
    Queues,
    QueuesFile,
    ResolvedPolicy,
    import_error,
    import_object,
    load_queues,
    running_cap,
)

__all__ = [
    "BUILTIN_POLICY",
    "POLICY_FIELDS",
    "Defaults",
    "DomainSpec",
    "Fairness",
    "JobType",
    "JobTypeSpec",
    "Policy",
    "Queues",
    "QueuesFile",
    "ResolvedPolicy",
    "import_error",
    "import_object",
    "load_queues",
    "running_cap",
]
