import signal
from tycho import Location

location = Location(debug_log=False)
node = location.best_node()
container = node.spawn('nginx')
container.attach_browser()
signal.pause()
