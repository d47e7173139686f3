"""Shared building blocks. Scenario/task-specific parameters are stored as *banks* (stacked
tensors with a leading bank dimension) and applied with one batched matmul, never a Python loop
over experts or towers."""

from msmtrec.nn.embedding import FeatureEmbedding
from msmtrec.nn.experts import CGC, ExpertBank, GateBank, SEIBank
from msmtrec.nn.gates import GateNU
from msmtrec.nn.grouping import ScenarioGroups
from msmtrec.nn.mlp import MLP, TowerBank

__all__ = ["FeatureEmbedding", "GateNU", "MLP", "TowerBank", "ExpertBank", "GateBank", "SEIBank", "CGC", "ScenarioGroups"]
