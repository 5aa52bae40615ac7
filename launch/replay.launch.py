"""Replay a rosbag2 recording through the processing nodes on the bag's clock.

The bag provides ``/stereo/{left,right}/image_raw`` and ``camera_info`` (and, for bags written
from the simulator, ``/sim/ground_truth``, so the simulated detector backend works on them);
stereo_capture is therefore not started. ``use_sim_time`` is set once for every node.

Playback starts when the graph is ready, so that nodes still starting up lose nothing:
``player:=package`` (the default) plays with the package's own player (tools/play_bag.py, pure
Python ``rosbags``, also where ``ros2 bag`` is not installed), which sends the first message once
every topic the nodes read has a matched subscription; ``player:=ros2bag`` starts
``ros2 bag play`` once the nodes have subscribed (the same check) and after ``ros2bag_delay``
seconds more for its own discovery.

    ros2 launch object_permanence replay.launch.py bag:=out/sim_bag rate:=0.5
    ros2 launch object_permanence replay.launch.py bag:=robot.mcap detector_backend:=onnxruntime weights:=yolo11n.onnx \
        remap:=/cam/left/image_rect=/stereo/left/image_raw,/cam/right/image_rect=/stereo/right/image_raw,...
    ros2 launch object_permanence replay.launch.py bag:=robot.mcap image_transport:=compressed ... \
        remap:=/cam/left/image_rect/compressed=/stereo/left/image_raw/compressed,...
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, GroupAction, LogInfo, RegisterEventHandler
from launch.conditions import IfCondition, LaunchConfigurationEquals
from launch.event_handlers import OnProcessExit
from launch.substitutions import EqualsSubstitution, IfElseSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'object_permanence'
#: What the nodes read from the bag: the detector the images, the triangulator the camera_info.
CAMERA_TOPICS = ('/stereo/left/image_raw,/stereo/right/image_raw,'
                 '/stereo/left/camera_info,/stereo/right/camera_info')
#: The same with image_transport:=compressed (sensor_msgs/CompressedImage on <image topic>/compressed).
COMPRESSED_CAMERA_TOPICS = ('/stereo/left/image_raw/compressed,/stereo/right/image_raw/compressed,'
                            '/stereo/left/camera_info,/stereo/right/camera_info')


def generate_launch_description() -> LaunchDescription:
    config_dir = LaunchConfiguration('config_dir')
    bag = LaunchConfiguration('bag')
    rate = LaunchConfiguration('rate')
    wait_timeout = LaunchConfiguration('wait_timeout')
    image_transport = LaunchConfiguration('image_transport')

    arguments = [
        DeclareLaunchArgument('bag', description='rosbag2 to replay (folder, .mcap or .db3 file).'),
        DeclareLaunchArgument('rate', default_value='1.0', description='Playback rate (1.0: real time).'),
        DeclareLaunchArgument(
            'player', default_value='package', choices=['package', 'ros2bag'],
            description="package: the package's rosbags-based player (no ros2 bag needed; plays once "
                        'the subscriptions are matched); ros2bag: ros2 bag play, started once the '
                        'nodes have subscribed.'),
        DeclareLaunchArgument(
            'delay', default_value='0.5',
            description='player:=package: seconds between the matched subscriptions and the first message.'),
        DeclareLaunchArgument(
            'ros2bag_delay', default_value='2.0',
            description='player:=ros2bag: seconds ros2 bag play waits before playing, for its own '
                        'publishers to be discovered by the nodes (--delay).'),
        DeclareLaunchArgument(
            'wait_timeout', default_value='120.0',
            description='Seconds to wait for the nodes to subscribe before giving up (nothing is played).'),
        DeclareLaunchArgument(
            'remap', default_value='',
            description="player:=package: play bag topics under the nodes' names, comma-separated FROM=TO "
                        '(e.g. /cam/left/image_rect=/stereo/left/image_raw,...).'),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='How the bag holds the camera images: raw (sensor_msgs/Image on '
                        '/stereo/<cam>/image_raw) or compressed (sensor_msgs/CompressedImage, JPEG or PNG, on '
                        '/stereo/<cam>/image_raw/compressed, as robots usually record them); sets the '
                        "detector's and the triangulator's image_transport."),
        DeclareLaunchArgument('rviz', default_value='true', description='Start RViz2.'),
        DeclareLaunchArgument(
            'detector_backend', default_value='simulated', choices=['simulated', 'ultralytics', 'onnxruntime'],
            description='simulated: needs /sim/ground_truth in the bag (bags written from the sim); '
                        'ultralytics: YOLO weights (AGPL-3.0, optional dependency).'),
        DeclareLaunchArgument(
            'weights', default_value='',
            description='YOLO weights: .pt for ultralytics, .onnx for onnxruntime; nothing is downloaded.'),
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
            description="OpenAI-compatible server URL (empty: the client's default)."),
        DeclareLaunchArgument(
            'config_dir', default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), 'config']),
            description='Folder holding <node>.yaml parameter files for every node.'),
    ]

    # namespace='': launch_ros writes each parameter dict under the node's full name, after (and
    # over) the node's block in its YAML file; pipeline.launch.py says why.
    nodes = GroupAction(actions=[
        # Every node in this group runs on the bag's /clock; the player outside it does not.
        SetParameter(name='use_sim_time', value=True),
        Node(package=PACKAGE, executable='detector', name='detector', namespace='', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'detector.yaml']), {
                 'backend': ParameterValue(LaunchConfiguration('detector_backend'), value_type=str),
                 'weights': ParameterValue(LaunchConfiguration('weights'), value_type=str),
                 'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                 'image_transport': ParameterValue(image_transport, value_type=str),
             }]),
        Node(package=PACKAGE, executable='world_model', name='world_model', namespace='', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'world_model.yaml'])]),
        Node(package=PACKAGE, executable='persistence_filter', name='persistence_filter', namespace='',
             output='screen', parameters=[PathJoinSubstitution([config_dir, 'persistence_filter.yaml'])]),
        Node(package=PACKAGE, executable='triangulator', name='triangulator', namespace='', output='screen',
             parameters=[PathJoinSubstitution([config_dir, 'triangulator.yaml']), {
                 'image_transport': ParameterValue(image_transport, value_type=str),
             }]),
        Node(package=PACKAGE, executable='llm_explainer', name='llm_explainer', namespace='', output='screen',
             condition=IfCondition(LaunchConfiguration('llm')),
             parameters=[PathJoinSubstitution([config_dir, 'llm_explainer.yaml']), {
                 'backend': ParameterValue(LaunchConfiguration('llm_backend'), value_type=str),
                 'base_url': ParameterValue(LaunchConfiguration('llm_base_url'), value_type=str),
             }]),
        Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
             condition=IfCondition(LaunchConfiguration('rviz')),
             arguments=['-d', PathJoinSubstitution([FindPackageShare(PACKAGE), 'rviz', 'object_permanence.rviz'])]),
    ])

    # The topics playback waits for: the simulated detector also reads the bag's ground truth.
    wait_for = [IfElseSubstitution(EqualsSubstitution(image_transport, 'compressed'),
                                   if_value=COMPRESSED_CAMERA_TOPICS, else_value=CAMERA_TOPICS), IfElseSubstitution(
        EqualsSubstitution(LaunchConfiguration('detector_backend'), 'simulated'),
        if_value=',/sim/ground_truth', else_value='')]

    play_package = Node(
        package=PACKAGE, executable='play_bag', name='play_bag', namespace='', output='screen',
        condition=LaunchConfigurationEquals('player', 'package'),
        arguments=[bag, '--clock', '--rate', rate, '--wait-for', wait_for, '--remap', LaunchConfiguration('remap'),
                   '--wait-timeout', wait_timeout, '--delay', LaunchConfiguration('delay')])

    # ros2 bag play cannot wait for subscribers: the package's player waits (--wait-only, with
    # publishers of its own) and exits; ros2 bag play starts when it exited 0.
    wait_for_graph = Node(
        package=PACKAGE, executable='play_bag', name='wait_for_graph', namespace='', output='screen',
        condition=LaunchConfigurationEquals('player', 'ros2bag'),
        arguments=[bag, '--wait-only', '--wait-for', wait_for, '--wait-timeout', wait_timeout])
    play_ros2bag = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', bag, '--clock', '--rate', rate,
             '--delay', LaunchConfiguration('ros2bag_delay')],
        output='screen')
    start_ros2bag = RegisterEventHandler(OnProcessExit(
        target_action=wait_for_graph,
        on_exit=lambda event, _context: [play_ros2bag] if event.returncode == 0 else [
            LogInfo(msg='replay: the nodes did not subscribe in time; ros2 bag play not started')]))

    return LaunchDescription([*arguments, nodes, play_package, wait_for_graph, start_ros2bag])
