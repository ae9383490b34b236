// streamd-kinesalite starts kinesalite (a Kinesis Data Streams peer) for the
// streamd tests, in memory and bound to 127.0.0.1 only (kinesalite's own
// cli.js listens on every interface).
//
// Usage: NODE_PATH=.cache/npm/node_modules node streamd-kinesalite.js PORT [STREAM_MS]
//
// STREAM_MS is the time CreateStream/UpdateShardCount/Split/Merge take to
// become ACTIVE (default 50). It prints "streamd-kinesalite ready" once the
// port listens and exits when stdin closes or on SIGTERM.
'use strict'

var port = parseInt(process.argv[2], 10)
if (!(port > 0)) {
  console.error('usage: streamd-kinesalite.js PORT [STREAM_MS]')
  process.exit(2)
}
var ms = process.argv[3] ? parseInt(process.argv[3], 10) : 50
var kinesalite = require('kinesalite')
var server = kinesalite({createStreamMs: ms, deleteStreamMs: ms, updateStreamMs: ms, shardLimit: 100})
server.on('error', function (err) {
  console.error('kinesalite: ' + err)
  process.exit(1)
})
server.listen(port, '127.0.0.1', function () {
  console.log('streamd-kinesalite ready')
})
process.on('SIGTERM', function () { process.exit(0) })
// kinesalite rethrows a request's 'error' event, so a client that cancels a
// call mid-request (ECONNRESET, "aborted") would kill the server. Such
// errors concern that one request only: log them and keep serving.
process.on('uncaughtException', function (err) {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted' || err.code === 'EPIPE')) {
    console.error('kinesalite: client went away: ' + err.message)
    return
  }
  console.error(err && err.stack ? err.stack : String(err))
  process.exit(1)
})
