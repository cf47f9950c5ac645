"""The stores behind projects, config versions, deployments, datasets, evaluators and evaluations, made once
per process and shared by the routes and the generation service (so their caches agree)."""

from dataclasses import dataclass

from loopgate.store.datasets import DatasetStore
from loopgate.store.deployments import Deployments
from loopgate.store.evaluations import EvaluationStore
from loopgate.store.evaluators import EvaluatorStore
from loopgate.store.model_configs import ConfigStore
from loopgate.store.projects import ProjectStore
from loopgate.store.repository import Store


@dataclass(frozen=True, slots=True)
class Catalog:
    store: Store
    projects: ProjectStore
    configs: ConfigStore
    deployments: Deployments
    datasets: DatasetStore
    evaluators: EvaluatorStore
    evaluations: EvaluationStore

    @classmethod
    def create(cls, store: Store, *, environments: list[str]) -> "Catalog":
        return cls(
            store=store,
            projects=ProjectStore(store.engine),
            configs=ConfigStore(store.engine),
            deployments=Deployments(store.engine, environments),
            datasets=DatasetStore(store.engine),
            evaluators=EvaluatorStore(store.engine),
            evaluations=EvaluationStore(store.engine),
        )
