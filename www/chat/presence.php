<?php
/*
 * The chat demo's "who is online": POST browser (a random id the page keeps
 * in localStorage) and name; answers {"token", "id", "channel"}: a presence
 * token (comet.php) for the channel presence-chat, good for an hour, naming
 * the member "id" (one per browser and name, so that every tab with that
 * name is one member) with info {"name": ...}. The page subscribes with it
 * and comet-fcgi tells everybody who comes and goes.
 *
 * Needs the token key, COMET_TOKEN_KEY, from PHP's environment or
 * comet-fcgi's settings file (as comet.php reads it); without one it
 * answers 503 and the chat goes on without the list.
 */
declare(strict_types=1);

require __DIR__ . '/common.php';

same_site_post('browser and name');

$browser = $_POST['browser'] ?? '';
if (!is_string($browser) || !preg_match('/\A[0-9a-f]{16,64}\z/', $browser)) {
    answer(400, ['error' => 'browser must be 16 to 64 hex digits', 'status' => 400]);
}
$name = field('name', 40);

try {
    $conf = Comet\Client::readConfig();
} catch (Comet\Exception $e) {
    error_log('chat/presence.php: ' . $e->getMessage());
    answer(503, ['error' => 'who is online is off: ' . $e->getMessage(), 'status' => 503]);
}
// As for the program, the environment wins over the file.
$key = getenv('COMET_TOKEN_KEY') ?: ($conf['COMET_TOKEN_KEY'] ?? '');
if ($key === '') {
    answer(503, ['error' => 'who is online is off: comet-fcgi has no COMET_TOKEN_KEY', 'status' => 503]);
}
$channel = 'presence-chat';
$id = substr(hash('sha256', $browser . "\n" . $name), 0, 20);
$token = Comet\Client::makePresenceToken($key, $channel, time() + 3600, $id, ['name' => $name]);
answer(200, ['token' => $token, 'id' => $id, 'channel' => $channel]);
