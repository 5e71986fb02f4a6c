"""The options sakura-ray adds to ``sakura run``. Importing this module imports no Ray."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: CPUs Ray reserves for one replica when --replica-cpus is not given (Ray's own default for an actor that runs).
DEFAULT_REPLICA_CPUS = 1.0


class RayOptions(BaseModel):
    """Where and how many replicas of the engine run. Giving any of these options hosts the engine on Ray."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    replicas: int | None = Field(
        None,
        ge=1,
        description="Serve the engine as N replicas on a Ray cluster (Ray Serve), each loading the model.",
    )
    min_replicas: int | None = Field(
        None,
        ge=1,
        description="Autoscale: at least this many replicas (with --max-replicas), more while requests queue.",
    )
    max_replicas: int | None = Field(None, ge=1, description="Autoscale: at most this many replicas.")
    ray_address: str | None = Field(
        None,
        description="The Ray cluster: auto (the one this machine joined with `ray start`), HOST:PORT of its head, "
        "or ray://HOST:PORT (Ray Client). Default: a private Ray on this machine, stopped with sakura.",
    )
    replica_cpus: float | None = Field(
        None, gt=0, description=f"CPUs Ray reserves for each replica. Default: {DEFAULT_REPLICA_CPUS:g}."
    )
    replica_gpus: float | None = Field(
        None, ge=0, description="GPUs Ray reserves for each replica (0.5: two replicas share one). Default: 0."
    )

    @model_validator(mode="after")
    def _replica_counts_agree(self) -> RayOptions:
        autoscaling = self.min_replicas is not None or self.max_replicas is not None
        if self.replicas is not None and autoscaling:
            raise ValueError(
                "--replicas fixes the number of replicas, --min-replicas/--max-replicas autoscale it: give one or "
                "the other"
            )
        if self.min_replicas is not None and self.max_replicas is None:
            raise ValueError("--min-replicas needs --max-replicas (the most replicas to scale up to)")
        if self.max_replicas is not None and (self.min_replicas or 1) > self.max_replicas:
            raise ValueError(f"--min-replicas {self.min_replicas} is more than --max-replicas {self.max_replicas}")
        return self

    @property
    def wanted(self) -> bool:
        """True when the user gave any of these options: the engine is then hosted on Ray."""
        return any(value is not None for value in self.model_dump().values())

    @property
    def autoscaling(self) -> bool:
        """True when the number of replicas follows the load."""
        return self.max_replicas is not None

    @property
    def first_replicas(self) -> int:
        """Replicas started at first."""
        return self.replicas or self.min_replicas or 1

    @property
    def most_replicas(self) -> int:
        """The most replicas that may run at once."""
        return self.replicas or self.max_replicas or 1

    @property
    def cpus(self) -> float:
        """CPUs reserved for one replica."""
        return DEFAULT_REPLICA_CPUS if self.replica_cpus is None else self.replica_cpus

    @property
    def gpus(self) -> float:
        """GPUs reserved for one replica."""
        return self.replica_gpus or 0.0
