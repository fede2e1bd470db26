from tycho import Location

location = Location(debug_log=False)
container = location.best_node().spawn('nginx')
container.wait_http_200()
data = container.spawn_process('ps faxu').wait_until_complete()
print(str(data, 'ascii'))
