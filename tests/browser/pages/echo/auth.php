<?php
/*
 * /broadcasting/auth as Laravel answers it (BroadcastController and
 * PusherBroadcaster with Pusher's PHP library), for the Echo tests: POST
 * socket_id and channel_name, the CSRF token in X-CSRF-TOKEN (419 when it
 * does not match, as VerifyCsrfToken), the session's user (403 without
 * one), and channels authorized by rules such as routes/channels.php holds:
 *   private-orders.{id}, private-App.Models.User.{id}   that user only
 *   private-forbidden.*                                  nobody (403)
 *   private-badsig.*    signed with a wrong secret, so comet-fcgi refuses it
 *   presence-*          everybody, as {id, name}
 *   other private-*     everybody
 * Answers {"auth": "<key>:<hex HMAC-SHA256(secret, socket_id:channel_name)>"}
 * or, for presence, also "channel_data" (signed as
 * socket_id:channel_name:channel_data).
 */
require __DIR__ . '/session.php';

header('Content-Type: application/json');
header('Cache-Control: no-store');

function answer(int $status, array $body): void
{
    http_response_code($status);
    echo json_encode($body), "\n";
    exit;
}

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    answer(405, ['message' => 'POST']);
}
if (!hash_equals($_SESSION['csrf'] ?? "\0", $_SERVER['HTTP_X_CSRF_TOKEN'] ?? '')) {
    answer(419, ['message' => 'CSRF token mismatch.']);
}
$user = $_SESSION['user'] ?? null;
if (!$user) {
    answer(403, ['message' => '']);
}
$socket = $_POST['socket_id'] ?? '';
$channel = $_POST['channel_name'] ?? '';
// Pusher's library refuses what is not a socket id (Laravel: an error).
if (!preg_match('/\A\d+\.\d+\z/', $socket)) {
    answer(500, ['message' => 'Invalid socket ID ' . $socket]);
}

$keys = pusher_keys();
$secret = $keys['secret'];
$data = null;
if (preg_match('/\Aprivate-(?:orders|App\.Models\.User)\.(\d+)\z/', $channel, $m)) {
    $ok = (int)$m[1] === $user;
} elseif (strncmp($channel, 'private-forbidden.', 18) === 0) {
    $ok = false;
} elseif (strncmp($channel, 'private-badsig.', 15) === 0) {
    $ok = true;
    $secret = 'not-' . $secret;
} elseif (strncmp($channel, 'presence-', 9) === 0) {
    $ok = true;
    $data = json_encode(['user_id' => $user, 'user_info' => ['id' => $user, 'name' => USERS[$user]]]);
} else {
    $ok = strncmp($channel, 'private-', 8) === 0;
}
if (!$ok) {
    answer(403, ['message' => '']);
}
$signed = $socket . ':' . $channel . ($data === null ? '' : ':' . $data);
$auth = ['auth' => $keys['key'] . ':' . hash_hmac('sha256', $signed, $secret)];
if ($data !== null) {
    $auth['channel_data'] = $data;
}
answer(200, $auth);
