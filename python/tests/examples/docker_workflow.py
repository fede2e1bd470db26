import signal
from tycho import Location, last_image

location = Location(debug_log=False)
node = location.best_node()
container = node.spawn(last_image())
container.attach_browser()
signal.pause()
