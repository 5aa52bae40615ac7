"""The pipeline on the built-in simulated stereo scene with the simulated detector, RViz on.

    ros2 launch object_permanence sim_demo.launch.py scenario:=long_occlusion
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('object_permanence'), 'launch', 'pipeline.launch.py'])),
        launch_arguments={
            'source': 'sim',
            'detector_backend': 'simulated',
            'scenario': LaunchConfiguration('scenario'),
            'rviz': LaunchConfiguration('rviz'),
            'llm': LaunchConfiguration('llm'),
            'composed': LaunchConfiguration('composed'),
        }.items())

    return LaunchDescription([
        DeclareLaunchArgument(
            'scenario', default_value='cluttered',
            choices=['clean', 'cluttered', 'crossing', 'long_occlusion', 'noisy', 'reentry'],
            description='Scenario preset of the simulated stereo scene.'),
        DeclareLaunchArgument('rviz', default_value='true', description='Start RViz2.'),
        DeclareLaunchArgument(
            'llm', default_value='true', description='Run llm_explainer (offline template sentences '
                                                     'unless an OpenAI-compatible server is configured).'),
        DeclareLaunchArgument(
            'composed', default_value='false', description='Run all nodes in one process.'),
        pipeline,
    ])
