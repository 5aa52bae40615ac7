"""object_permanence: stereo 3D perception with object permanence.

In the source tree this file lets the ROS-free core be imported without a build; the
installed package's ``__init__.py`` is the one rosidl generates beside ``msg/``. Extending
``__path__`` lets a source checkout and a built install be imported together.
"""
__path__ = __import__('pkgutil').extend_path(__path__, __name__)
