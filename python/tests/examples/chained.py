import signal
from tycho import Location, last_image

Location(debug_log=False).best_node().spawn(last_image()).attach_browser()
signal.pause()
