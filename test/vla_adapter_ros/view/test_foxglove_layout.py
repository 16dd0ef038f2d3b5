"""config/foxglove/aloha_layout.json: every topic it shows is one the suite publishes."""

import json
import pathlib
import re

from vla_adapter_core.robot_description import load_robot_description
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS
from vla_adapter_ros.params.view_config import VIEW_PARAMETERS
from vla_adapter_ros.pipeline.health import DIAGNOSTICS_TOPIC

LAYOUT = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'foxglove' / 'aloha_layout.json'
ALOHA = load_robot_description('aloha')


def known_topics() -> set[str]:
    """The topics of the ALOHA graph, each from its one home."""
    topics = set(ALOHA.camera_topics()) | {DIAGNOSTICS_TOPIC}
    for arm in (*ALOHA.arms, *ALOHA.leaders):
        topics.add(f'/{arm.namespace}/joint_states')
    for arm in ALOHA.arms:
        topics |= {f'/{arm.namespace}/commands/joint_group',
                   f'/{arm.namespace}/commands/joint_single'}
    topics |= {'/' + EXECUTOR_PARAMETERS['chunk_topic'].default,
               '/' + EXECUTOR_PARAMETERS['status_topic'].default,
               '/' + VIEW_PARAMETERS['policy_status_topic'].default}
    return topics


def panel_ids(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    return panel_ids(node['first']) + panel_ids(node['second'])


def layout_topics(layout: dict) -> set[str]:
    topics = set()
    for panel in layout['configById'].values():
        if 'imageMode' in panel:
            topics.add(panel['imageMode']['imageTopic'])
        for path in panel.get('paths', []):
            topics.add(re.match(r'(/[\w/]+)\.', path['value']).group(1))
        for key in ('topicPath', 'topicToRender'):
            if key in panel:
                topics.add(panel[key])
    return topics


def test_the_layout_shows_only_topics_of_the_graph_and_every_camera_and_arm():
    layout = json.loads(LAYOUT.read_text())
    topics = layout_topics(layout)
    assert topics <= known_topics(), topics - known_topics()
    assert set(ALOHA.camera_topics()) <= topics
    assert {f'/{arm.namespace}/joint_states' for arm in ALOHA.arms + ALOHA.leaders} <= topics


def test_every_panel_is_placed_once():
    layout = json.loads(LAYOUT.read_text())
    placed = panel_ids(layout['layout'])
    assert sorted(placed) == sorted(layout['configById'])
    assert all(panel.split('!')[0] in ('Image', 'Plot', 'RawMessages', 'DiagnosticSummary')
               for panel in placed)
