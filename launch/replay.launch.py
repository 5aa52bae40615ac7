"""Replay a rosbag2 recording through the processing nodes on the bag's clock.

The bag provides ``/stereo/{left,right}/image_raw`` and ``camera_info`` (and, for bags written
from the simulator, ``/sim/ground_truth``, so the simulated detector backend works on them);
stereo_capture is therefore not started. ``use_sim_time`` is set once for every node.

    ros2 launch object_permanence replay.launch.py bag:=out/sim_bag rate:=0.5
    ros2 launch object_permanence replay.launch.py bag:=robot.mcap detector_backend:=ultralytics weights:=yolo11n.pt
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'object_permanence'


def generate_launch_description() -> LaunchDescription:
    config_dir = LaunchConfiguration('config_dir')

    arguments = [
        DeclareLaunchArgument('bag', description='rosbag2 to replay (folder, .mcap or .db3 file).'),
        DeclareLaunchArgument('rate', default_value='1.0', description='Playback rate (1.0: real time).'),
        DeclareLaunchArgument(
            'delay', default_value='2.0',
            description='Seconds to wait before playing, so the nodes have subscribed (DDS discovery).'),
        DeclareLaunchArgument('rviz', default_value='true', description='Start RViz2.'),
        DeclareLaunchArgument(
            'detector_backend', default_value='simulated', choices=['simulated', 'ultralytics'],
            description='simulated: needs /sim/ground_truth in the bag (bags written from the sim); '
                        'ultralytics: YOLO weights (AGPL-3.0, optional dependency).'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='ultralytics: YOLO weights file (.pt); nothing is downloaded.'),
        DeclareLaunchArgument(
            'device', default_value='auto', choices=['auto', 'cpu', 'cuda'],
            description='ultralytics: inference device (auto: cuda when available).'),
        DeclareLaunchArgument(
            'llm', default_value='true',
            description='Run llm_explainer (asynchronous, never in the control loop).'),
        DeclareLaunchArgument(
            'llm_backend', default_value='auto', choices=['auto', 'template', 'openai'],
            description='Explainer backend. auto: openai when an API key or llm_base_url is '
                        'configured, else offline template sentences.'),
        DeclareLaunchArgument(
            'llm_base_url', default_value='',
            description='OpenAI-compatible server URL (empty: the client\'s default).'),
        DeclareLaunchArgument(
            'config_dir', default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), 'config']),
            description='Folder holding <node>.yaml parameter files for every node.'),
    ]

    play = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', LaunchConfiguration('bag'), '--clock',
             '--rate', LaunchConfiguration('rate'), '--delay', LaunchConfiguration('delay')],
        output='screen')

    nodes = [
        Node(package=PACKAGE, executable='detector', name='detector', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'detector.yaml']), {
                 'backend': ParameterValue(LaunchConfiguration('detector_backend'), value_type=str),
                 'weights': ParameterValue(LaunchConfiguration('weights'), value_type=str),
                 'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
             }]),
        Node(package=PACKAGE, executable='world_model', name='world_model', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'world_model.yaml'])]),
        Node(package=PACKAGE, executable='persistence_filter', name='persistence_filter', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'persistence_filter.yaml'])]),
        Node(package=PACKAGE, executable='triangulator', name='triangulator', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'triangulator.yaml'])]),
        Node(package=PACKAGE, executable='llm_explainer', name='llm_explainer', output='screen',
             condition=IfCondition(LaunchConfiguration('llm')),
             parameters=[PathJoinSubstitution([config_dir, 'llm_explainer.yaml']), {
                 'backend': ParameterValue(LaunchConfiguration('llm_backend'), value_type=str),
                 'base_url': ParameterValue(LaunchConfiguration('llm_base_url'), value_type=str),
             }]),
        Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
             condition=IfCondition(LaunchConfiguration('rviz')),
             arguments=['-d', PathJoinSubstitution([FindPackageShare(PACKAGE), 'rviz', 'object_permanence.rviz'])]),
    ]

    # Every node below runs on the bag's /clock.
    return LaunchDescription([*arguments, SetParameter(name='use_sim_time', value=True), *nodes, play])
