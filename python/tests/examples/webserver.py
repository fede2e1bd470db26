import signal
from tycho import Location, last_image

location = Location(debug_log=False)
container = location.best_node().spawn('nginx')
tnl = container.attach_browser()
signal.pause()
