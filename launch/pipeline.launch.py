"""The object_permanence pipeline: stereo capture -> detector -> world model -> persistence filter
-> triangulator (-> LLM explainer), as six processes or composed in one (``composed:=true``).

Every node reads ``<config_dir>/<node>.yaml``; the launch arguments below override the few
parameters one changes per run. ``use_sim_time`` is set once for every node (RViz included).

    ros2 launch object_permanence pipeline.launch.py source:=video calibration_file:=/path/stereo.yaml
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'object_permanence'


def generate_launch_description() -> LaunchDescription:
    source = LaunchConfiguration('source')
    calibration_file = LaunchConfiguration('calibration_file')
    detector_backend = LaunchConfiguration('detector_backend')
    weights = LaunchConfiguration('weights')
    device = LaunchConfiguration('device')
    scenario = LaunchConfiguration('scenario')
    llm_backend = LaunchConfiguration('llm_backend')
    llm_base_url = LaunchConfiguration('llm_base_url')
    config_dir = LaunchConfiguration('config_dir')
    composed = LaunchConfiguration('composed')

    stereo_capture_yaml = PathJoinSubstitution([config_dir, 'stereo_capture.yaml'])
    detector_yaml = PathJoinSubstitution([config_dir, 'detector.yaml'])
    world_model_yaml = PathJoinSubstitution([config_dir, 'world_model.yaml'])
    persistence_filter_yaml = PathJoinSubstitution([config_dir, 'persistence_filter.yaml'])
    triangulator_yaml = PathJoinSubstitution([config_dir, 'triangulator.yaml'])
    llm_explainer_yaml = PathJoinSubstitution([config_dir, 'llm_explainer.yaml'])

    arguments = [
        DeclareLaunchArgument(
            'source', default_value='sim', choices=['sim', 'video', 'images', 'camera'],
            description='Where stereo_capture reads frames from (video/images/camera need '
                        'calibration_file; the other source settings are in stereo_capture.yaml).'),
        DeclareLaunchArgument(
            'calibration_file', default_value='',
            description='Stereo calibration YAML (camera_calibration_parsers format, left:/right: '
                        'blocks); the sim uses its own rig when empty.'),
        DeclareLaunchArgument(
            'detector_backend', default_value='simulated', choices=['simulated', 'ultralytics'],
            description='simulated: detector simulator over sim/ground_truth (sim sources and sim '
                        'bags only); ultralytics: YOLO weights (AGPL-3.0, optional dependency).'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='ultralytics: YOLO weights file (.pt); nothing is downloaded.'),
        DeclareLaunchArgument(
            'device', default_value='auto', choices=['auto', 'cpu', 'cuda'],
            description='ultralytics: inference device (auto: cuda when available).'),
        DeclareLaunchArgument(
            'scenario', default_value='cluttered',
            choices=['clean', 'cluttered', 'crossing', 'long_occlusion', 'noisy'],
            description='sim: scenario preset of the simulated stereo scene.'),
        DeclareLaunchArgument(
            'rviz', default_value='false', description='Start RViz2 with rviz/object_permanence.rviz.'),
        DeclareLaunchArgument(
            'llm', default_value='true',
            description='Run llm_explainer (asynchronous, never in the control loop). The composed '
                        'process always contains it.'),
        DeclareLaunchArgument(
            'llm_backend', default_value='auto', choices=['auto', 'template', 'openai'],
            description='Explainer backend. auto: openai when an API key or llm_base_url is '
                        'configured, else offline template sentences.'),
        DeclareLaunchArgument(
            'llm_base_url', default_value='',
            description='OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (empty: the '
                        "client's default). The API key comes from OPENAI_API_KEY."),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use /clock (rosbag2 replay with --clock) instead of the system clock.'),
        DeclareLaunchArgument(
            'config_dir', default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), 'config']),
            description='Folder holding <node>.yaml parameter files for every node.'),
        DeclareLaunchArgument(
            'composed', default_value='false',
            description='Run all nodes in one process (the pipeline executable, one executor, no '
                        'inter-process image copies) instead of one process per node.'),
    ]

    separate = GroupAction(condition=UnlessCondition(composed), actions=[
        Node(package=PACKAGE, executable='stereo_capture', name='stereo_capture', output='screen',
             parameters=[stereo_capture_yaml, {
                 'source': ParameterValue(source, value_type=str),
                 'calibration_file': ParameterValue(calibration_file, value_type=str),
                 'scenario': ParameterValue(scenario, value_type=str),
             }]),
        Node(package=PACKAGE, executable='detector', name='detector', output='screen',
             parameters=[detector_yaml, {
                 'backend': ParameterValue(detector_backend, value_type=str),
                 'weights': ParameterValue(weights, value_type=str),
                 'device': ParameterValue(device, value_type=str),
             }]),
        Node(package=PACKAGE, executable='world_model', name='world_model', output='screen',
             parameters=[world_model_yaml]),
        Node(package=PACKAGE, executable='persistence_filter', name='persistence_filter', output='screen',
             parameters=[persistence_filter_yaml]),
        Node(package=PACKAGE, executable='triangulator', name='triangulator', output='screen',
             parameters=[triangulator_yaml]),
        Node(package=PACKAGE, executable='llm_explainer', name='llm_explainer', output='screen',
             condition=IfCondition(LaunchConfiguration('llm')),
             parameters=[llm_explainer_yaml, {
                 'backend': ParameterValue(llm_backend, value_type=str),
                 'base_url': ParameterValue(llm_base_url, value_type=str),
             }]),
    ])

    # One process holds six nodes: a parameter dict would reach all of them (detector and
    # llm_explainer both declare `backend`), so the overrides are node-scoped `-p node:name:=value`
    # rules, each value a single-quoted YAML string. rcl applies parameter arguments in order, the
    # last one winning, so the files go in `ros_arguments` too, ahead of the rules.
    composed_pipeline = Node(
        package=PACKAGE, executable='pipeline', output='screen', condition=IfCondition(composed),
        ros_arguments=[
            '--params-file', stereo_capture_yaml,
            '--params-file', detector_yaml,
            '--params-file', world_model_yaml,
            '--params-file', persistence_filter_yaml,
            '--params-file', triangulator_yaml,
            '--params-file', llm_explainer_yaml,
            '-p', ["stereo_capture:source:='", source, "'"],
            '-p', ["stereo_capture:calibration_file:='", calibration_file, "'"],
            '-p', ["stereo_capture:scenario:='", scenario, "'"],
            '-p', ["detector:backend:='", detector_backend, "'"],
            '-p', ["detector:weights:='", weights, "'"],
            '-p', ["detector:device:='", device, "'"],
            '-p', ["llm_explainer:backend:='", llm_backend, "'"],
            '-p', ["llm_explainer:base_url:='", llm_base_url, "'"],
        ])

    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        condition=IfCondition(LaunchConfiguration('rviz')),
        arguments=['-d', PathJoinSubstitution([FindPackageShare(PACKAGE), 'rviz', 'object_permanence.rviz'])])

    return LaunchDescription([
        *arguments,
        SetParameter(name='use_sim_time', value=LaunchConfiguration('use_sim_time')),
        separate,
        composed_pipeline,
        rviz,
    ])
