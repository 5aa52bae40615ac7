"""The object_permanence pipeline: stereo capture -> detector -> world model -> persistence filter
-> triangulator (-> LLM explainer), as one process per node or composed in one (``composed:=true``).

Every node reads ``<config_dir>/<node>.yaml``; the launch arguments below override the few
parameters one changes per run, with precedence over the files in both modes. ``use_sim_time`` is
set once for every node (RViz included). ``nodes`` picks the nodes this machine starts, so that
the detector can run on a GPU host and the rest on the robot (docs/launch.md).

    ros2 launch object_permanence pipeline.launch.py source:=video calibration_file:=/path/stereo.yaml
    ros2 launch object_permanence pipeline.launch.py nodes:=detector detector_backend:=ultralytics \
        weights:=/path/yolo.pt device:=cuda
"""
from launch import Condition, LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'object_permanence'
#: The nodes of the graph, upstream first (``nodes:=`` takes a comma-separated subset).
NODES = ('stereo_capture', 'detector', 'world_model', 'persistence_filter', 'triangulator', 'llm_explainer')


def generate_launch_description() -> LaunchDescription:
    source = LaunchConfiguration('source')
    calibration_file = LaunchConfiguration('calibration_file')
    detector_backend = LaunchConfiguration('detector_backend')
    weights = LaunchConfiguration('weights')
    device = LaunchConfiguration('device')
    scenario = LaunchConfiguration('scenario')
    llm = LaunchConfiguration('llm')
    llm_backend = LaunchConfiguration('llm_backend')
    llm_base_url = LaunchConfiguration('llm_base_url')
    config_dir = LaunchConfiguration('config_dir')
    composed = LaunchConfiguration('composed')
    nodes = LaunchConfiguration('nodes')
    image_transport = LaunchConfiguration('image_transport')

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
            'detector_backend', default_value='simulated', choices=['simulated', 'ultralytics', 'onnxruntime'],
            description='simulated: detector simulator over sim/ground_truth (sim sources and sim '
                        'bags only); ultralytics: YOLO weights through torch (AGPL-3.0, optional dependency); '
                        'onnxruntime: an exported YOLO (.onnx), the faster path on a CPU.'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='YOLO weights: .pt for ultralytics, .onnx for onnxruntime; nothing is downloaded.'),
        DeclareLaunchArgument(
            'device', default_value='auto', choices=['auto', 'cpu', 'cuda'],
            description='ultralytics: inference device (auto: cuda when available).'),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='How the detector and the triangulator read the camera images: raw '
                        '(sensor_msgs/Image on stereo/<cam>/image_raw) or compressed (sensor_msgs/CompressedImage, '
                        'JPEG or PNG, on stereo/<cam>/image_raw/compressed: a camera driver that publishes them '
                        'compressed, or stereo_capture on another machine, e.g. nodes:=detector on a GPU host; '
                        'stereo_capture encodes JPEG only while someone subscribes).'),
        DeclareLaunchArgument(
            'scenario', default_value='cluttered',
            choices=['clean', 'cluttered', 'crossing', 'long_occlusion', 'noisy', 'reentry'],
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
        DeclareLaunchArgument(
            'nodes', default_value='all',
            description='Nodes this machine starts: all, or a comma-separated list of stereo_capture, '
                        'detector, world_model, persistence_filter, triangulator, llm_explainer (e.g. '
                        'nodes:=detector on a GPU host and the other five on the robot, in one DDS '
                        'domain; docs/launch.md). Anything but all needs composed:=false.'),
    ]

    def requested(context: LaunchContext) -> set:
        """The node names ``nodes`` asks for; ValueError (launch stops, naming it) on a bad list."""
        value = context.perform_substitution(nodes)
        names = {name.strip() for name in value.split(',') if name.strip()}
        unknown = sorted(names - {'all', *NODES})
        if unknown or not names:
            raise ValueError(f"nodes:='{value}': {', '.join(unknown) or 'empty list'} is not 'all' or a "
                             f"comma-separated list of {', '.join(NODES)}")
        return set(NODES) if 'all' in names else names

    def starts(node: str, enabled: LaunchConfiguration | None = None) -> Condition:
        """This machine starts ``node`` (``nodes`` names it; ``enabled``, when given, is true)."""
        return Condition(predicate=lambda context: node in requested(context) and (
            enabled is None or IfCondition(enabled).evaluate(context)))

    def starts_composed(context: LaunchContext) -> bool:
        """composed:=true runs every node in one process: a node subset is refused, not ignored."""
        if not IfCondition(composed).evaluate(context):
            return False
        if requested(context) != set(NODES):
            raise ValueError(f"nodes:='{context.perform_substitution(nodes)}' needs composed:=false: the "
                             'composed process runs every node')
        return True

    # namespace='' (the root, or the namespace pushed by an including launch file) makes launch_ros
    # write each parameter dict under the node's full name: without a namespace it writes them
    # under the /** wildcard, and the node's own block in its YAML file wins over a wildcard. A
    # dict after the YAML file, for the same node, wins over it.
    separate = GroupAction(condition=UnlessCondition(composed), actions=[
        Node(package=PACKAGE, executable='stereo_capture', name='stereo_capture', namespace='',
             output='screen', condition=starts('stereo_capture'),
             parameters=[stereo_capture_yaml, {
                 'source': ParameterValue(source, value_type=str),
                 'calibration_file': ParameterValue(calibration_file, value_type=str),
                 'scenario': ParameterValue(scenario, value_type=str),
             }]),
        Node(package=PACKAGE, executable='detector', name='detector', namespace='',
             output='screen', condition=starts('detector'),
             parameters=[detector_yaml, {
                 'backend': ParameterValue(detector_backend, value_type=str),
                 'weights': ParameterValue(weights, value_type=str),
                 'device': ParameterValue(device, value_type=str),
                 'image_transport': ParameterValue(image_transport, value_type=str),
             }]),
        Node(package=PACKAGE, executable='world_model', name='world_model', namespace='',
             output='screen', condition=starts('world_model'),
             parameters=[world_model_yaml]),
        Node(package=PACKAGE, executable='persistence_filter', name='persistence_filter', namespace='',
             output='screen', condition=starts('persistence_filter'),
             parameters=[persistence_filter_yaml]),
        Node(package=PACKAGE, executable='triangulator', name='triangulator', namespace='',
             output='screen', condition=starts('triangulator'),
             parameters=[triangulator_yaml, {
                 'image_transport': ParameterValue(image_transport, value_type=str),
             }]),
        Node(package=PACKAGE, executable='llm_explainer', name='llm_explainer', namespace='',
             output='screen', condition=starts('llm_explainer', llm),
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
        package=PACKAGE, executable='pipeline', output='screen', condition=Condition(predicate=starts_composed),
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
            '-p', ["detector:image_transport:='", image_transport, "'"],
            '-p', ["triangulator:image_transport:='", image_transport, "'"],
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
