-- Children first, so that no cascade runs while the tables go.
DROP TABLE invitations;
DROP TABLE events;
DROP TABLE chat_messages;
DROP TABLE participants;
DROP TABLE rooms;
