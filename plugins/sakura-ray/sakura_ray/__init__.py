"""sakura-ray: serve any sakura engine as replicas on a Ray cluster, through Ray Serve.

Importing this package is cheap: Ray is imported only when ``sakura run`` is given one of the plugin's options.
"""

__version__ = "0.1.0"
