import signal
import json
from tycho import Location, last_image

location = Location(debug_log=False)
container = location.best_node().spawn(last_image())
container.attach_browser()
for log in container.logs():
    print(json.dumps(log, indent=4))
signal.pause()
