"""The methods: one module per method over one :class:`~featureae_lite.models.base.Detector`
interface, and the registry that names them. Each detector owns its networks, frozen backbone included."""
