"""Shared building blocks. Scenario/task-specific parameters are stored as *banks* (stacked
tensors with a leading bank dimension) and applied with one batched matmul, never a Python loop
over experts or towers."""

from msmtrec.nn.embedding import FeatureEmbedding
from msmtrec.nn.experts import CGC, CGCStack, ExpertBank, MixingGateBank, SEIBank
from msmtrec.nn.gate_nu import GateNU, GateNUBank
from msmtrec.nn.grouping import ScenarioGroups
from msmtrec.nn.mlp import MLP, TowerBank

__all__ = ["FeatureEmbedding", "GateNU", "GateNUBank", "MLP", "TowerBank", "ExpertBank", "MixingGateBank", "SEIBank", "CGC", "CGCStack",
           "ScenarioGroups"]
